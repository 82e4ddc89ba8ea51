//! Authentication: registration, login, refresh-token rotation, logout, and the current user.

pub mod handlers;
pub mod password;
pub mod service;
pub mod throttle;
pub mod tokens;
