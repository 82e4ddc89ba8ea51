//! Users of a tenant and their roles. Owners and admins manage them; agents can only read the list
//! (an inbox needs it to pick an assignee).

pub mod handlers;
