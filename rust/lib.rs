//! Silo's Rust core: a durable job broker over SlateDB. `rust/py/` (feature "python") is the
//! only part that knows Python; everything else knows neither Python nor gRPC.

pub mod audit;
pub mod auth;
pub mod broker;
pub mod clock;
pub mod cluster;
pub mod cron;
pub mod error;
pub mod keys;
pub mod lifecycle;
pub mod metrics;
pub mod proto;
pub mod record;
pub mod retry;
pub mod routing;
pub mod rpc;
pub mod search;
pub mod shard;
pub mod store;
pub mod stream_io;
pub mod validate;

#[cfg(feature = "python")]
mod py;

#[cfg(feature = "python")]
mod allocator;

pub use broker::{Broker, BrokerConfig};
pub use error::{Error, Result};
