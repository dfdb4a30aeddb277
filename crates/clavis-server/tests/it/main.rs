//! One integration-test binary: the server on port 0 with real TLS, real SQLite files and a real
//! PostgreSQL, driven over HTTPS. See `support` for the harness.

mod api;
mod audit;
mod backup;
mod events;
mod hostile;
mod keys;
mod lifecycle;
mod limits;
mod migrate;
mod portal;
mod rotation;
mod support;
mod timing;
mod token;
mod troubleshooting;
mod vault;
