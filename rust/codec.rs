//! Stored value encoding: every record is a prost message of proto/silo/store/v1 or silo/v1.

use bytes::Bytes;
use prost::Message;

use crate::error::Result;

pub fn encode<M: Message>(m: &M) -> Bytes {
    Bytes::from(m.encode_to_vec())
}

pub fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M> {
    Ok(M::decode(bytes)?)
}

pub fn encode_u64(v: u64) -> Bytes {
    Bytes::copy_from_slice(&v.to_be_bytes())
}

pub fn decode_u64(bytes: &[u8]) -> Result<u64> {
    let a: [u8; 8] = bytes
        .try_into()
        .map_err(|_| crate::Error::Internal(format!("bad counter value {bytes:02x?}")))?;
    Ok(u64::from_be_bytes(a))
}
