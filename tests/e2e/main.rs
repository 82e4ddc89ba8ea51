//! End-to-end tests: the real host on a port, a real database of each kind, HTTP as clients speak it.

mod agents;
mod auth;
mod channels;
mod cluster;
mod console;
mod crash;
mod errors;
mod hardening;
mod health;
mod inbound;
mod inbox;
mod isolation;
mod migrations;
mod operations;
mod outbound;
mod platform;
mod plugins;
mod postgres_restart;
mod realtime;
mod store_contract;
mod telegram_user;
mod template;
mod users;
mod webhooks;
mod whatsapp;
mod widget;
mod widget_browser;

use omnichat_tests::on_both_databases;
