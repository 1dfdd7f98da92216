//! Silo's Rust core: a durable job broker over SlateDB. `rust/py/` (feature "python") is the
//! only part that knows Python; everything else knows neither Python nor gRPC.

pub mod broker;
pub mod clock;
pub mod codec;
pub mod error;
pub mod keys;
pub mod lifecycle;
pub mod proto;
pub mod retry;
pub mod shard;
pub mod store;
pub mod validate;

#[cfg(feature = "python")]
mod py;

/// Rust allocations of the extension module only (Python's objects use Python's allocator).
#[cfg(feature = "python")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use broker::{Broker, BrokerConfig};
pub use error::{Error, Result};
