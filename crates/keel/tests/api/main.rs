//! One integration-test binary: the real server over real SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod helpers;

mod auth;
mod cache;
mod cli;
mod design;
mod errors;
mod events;
mod events_admin;
mod events_brokers;
mod events_crash;
mod foundation;
mod graphql;
mod graphql_plans;
mod graphql_subscriptions;
mod lists;
mod many_nodes;
mod many_processes;
mod migrations;
mod oauth;
mod openapi;
mod permissions;
mod realtime;
mod realtime_clients;
mod realtime_ws;
mod records;
mod replicas;
