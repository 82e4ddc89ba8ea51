//! Channel instances of a tenant: CRUD, and the secret part of their configuration, which is
//! encrypted at rest and shown redacted.

pub mod handlers;
pub mod secrets;
