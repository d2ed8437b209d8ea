//! racy-matrix's integration tests, in one test binary (`cargo test --test it`; one area:
//! `cargo test --test it end_to_end::`). One binary links bollard, sqlx and tokio once
//! instead of once per area. The areas run side by side; [`common`] says which tests
//! hold its engine lock, and why.
//!
//! Without an engine:
//! - `bad_input`: the bad-input and bad-stacks corpora are refused, located
//! - `compare`: `racy-matrix compare` on run directories written through the store
//! - `input`: bad input refused before anything starts; `plan`
//! - `timings`: `plan --timings` and `--shards` from measured durations
//! - `workflow`: the nightly workflow's shards and stories
//!
//! On the engine:
//! - `atomic_requests`: seed 003 under Django's ATOMIC_REQUESTS
//! - `end_to_end`: every endpoint of the django-mysql stack, 1 and 4 workers
//! - `endpoints`: the stacks' endpoint lists match the app's registry
//! - `engines`: one run across this engine and a second Docker daemon
//! - `expectations`: a wrong expectation fails the run
//! - `faults`: SIGINT, SIGKILL and a killed database mid-run
//! - `honest`: what the numbers, files, `--keep-up`, `down` and `clean` promise
//! - `lock_scope`: seed 002, each lock safe up to its scope
//! - `on_commit`: seed 003, tasks dispatched before commit
//! - `own_app`: the Flask example with its own compose file
//! - `postgres`: the PostgreSQL stack under two isolation levels
//! - `refresh`: seed 004's refresh_from_db()
//! - `report_html`: report.html in headless Chromium
//! - `routes`: direct, published and racer routes measure the same race
//! - `schema`: the database images' baked schemas match the migrations
//! - `seed_000`: the start-up race
//! - `seed_remarks`: seed 001's side remarks
//! - `shards`: shards merged equal the whole run; `--parallel 2`
//! - `sqlite`: SQLite on a shared volume
//! - `stories`: get_or_create and its variants
//! - `up_down`: `up` answers, `down` removes everything

mod common;

mod atomic_requests;
mod bad_input;
mod check_then_act;
mod compare;
mod end_to_end;
mod endpoints;
mod engines;
mod expectations;
mod faults;
mod honest;
mod input;
mod lock_scope;
mod on_commit;
mod own_app;
mod postgres;
mod refresh;
mod report_html;
mod routes;
mod schema;
mod seed_000;
mod seed_remarks;
mod shards;
mod sqlite;
mod stories;
mod timings;
mod up_down;
mod workflow;
