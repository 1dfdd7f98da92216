//! Generated prost types: `silo.v1` is the wire contract, `silo.store.v1` the stored records,
//! `silo.admin.v1` the operator/test service of one process.
//! Modules mirror the proto packages so generated cross-package paths resolve.

#[allow(clippy::all, clippy::pedantic)]
pub mod silo {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/silo.v1.rs"));
    }
    pub mod store {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/silo.store.v1.rs"));
        }
    }
    pub mod admin {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/silo.admin.v1.rs"));
        }
    }
}

pub use silo::admin::v1 as admin;

pub use silo::store::v1 as records;
pub use silo::v1 as wire;
