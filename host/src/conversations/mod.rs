//! The inbox read API: conversations, their messages, and customers.

pub mod handlers;
