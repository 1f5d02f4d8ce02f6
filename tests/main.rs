//! sockbox's end-to-end suite: real wasmtime, real sockets on loopback, real processes.
//!
//! One module per concern. Every server binds port 0 and is awaited through its
//! `listening on` line; every wait is bounded by [`common::TIMEOUT`].

mod bad_input;
mod bench;
mod cache;
mod common;
mod concurrency;
mod deadlines;
mod denials;
mod faults;
mod flows;
mod foreign_component;
mod go_interop;
mod hardening;
mod instances;
mod integrity;
mod limits;
mod lookup;
mod nodelay;
mod p3;
mod parsers;
mod plugin;
mod policy;
mod poll;
mod production;
mod sandbox;
mod self_connections;
mod stock_wasmtime;
mod udp;
mod wit_world;
