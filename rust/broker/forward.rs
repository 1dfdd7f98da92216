//! Forwarding a call to the node that owns its shard: the request's bytes as they came (no
//! re-encoding), the caller's metadata passed through, over one HTTP/2 channel per peer
//! (docs/cluster.md#routing). A node that serves TLS reaches its peers over TLS too, verifying
//! their certificates and presenting its own (docs/security.md#in-a-cluster).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataKey};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::shards::Peer;
use crate::error::{Code, Error};
use crate::rpc::Rpc;

/// Metadata naming how many nodes forwarded a call already; a node forwards a call at most
/// `MAX_HOPS` times (the cluster map may be settling), then answers ShardUnavailable.
pub const HOPS_HEADER: &str = "silo-hops";
pub const MAX_HOPS: u32 = 3;
/// Largest message forwarded either way (the server's own limit: docs/api.md#limits).
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The caller's side of one call: what a forwarded call carries on.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The caller's metadata (gRPC's reserved headers excluded), passed on as it came;
    /// keys ending in `-bin` hold binary values.
    pub metadata: Vec<(String, Vec<u8>)>,
    /// How many nodes forwarded the call before this one.
    pub hops: u32,
}

impl CallContext {
    /// The context of a call that arrived with this metadata (the hop count is taken out).
    pub fn from_metadata(metadata: Vec<(String, Vec<u8>)>) -> CallContext {
        let mut hops = 0;
        let metadata = metadata
            .into_iter()
            .filter(|(k, v)| {
                if k == HOPS_HEADER {
                    hops = std::str::from_utf8(v)
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(MAX_HOPS);
                    false
                } else {
                    true
                }
            })
            .collect();
        CallContext { metadata, hops }
    }
}

/// Why a forwarded call has no answer.
#[derive(Debug)]
pub enum ForwardError {
    /// The call never left this node (no connection to the peer): safe to send elsewhere.
    NotSent(String),
    /// The peer answered this error (or the call failed after it was sent: UNAVAILABLE).
    Answered(Error),
}

/// How this node reaches its peers over TLS: the node's own certificate and key (its client
/// identity, which peers that require client certificates check) and the CA certificates that
/// must have signed the peers' certificates (`None`: the system's roots).
#[derive(Debug, Clone)]
pub struct PeerTls {
    config: ClientTlsConfig,
}

impl PeerTls {
    /// Reads the PEM files of `silo serve --tls-cert/--tls-key` and of the CA the peers are
    /// verified against (`--tls-peer-ca`, else `--tls-client-ca`; `None`: the system's roots).
    /// `ca` is the CA's setting and path. A file that cannot be read is `InvalidArgument` naming
    /// its setting; the contents are checked by `silo serve` before the broker opens.
    pub fn from_files(cert: &str, key: &str, ca: Option<(&str, &str)>) -> Result<PeerTls, Error> {
        let read = |setting: &str, path: &str| {
            std::fs::read(path).map_err(|e| Error::invalid(setting, format!("{path}: {e}")))
        };
        let identity = Identity::from_pem(read("tls_cert", cert)?, read("tls_key", key)?);
        // Each peer's name is checked against the host of its advertise address (tonic takes
        // it from the channel's URI), so node certificates must name it (an IP SAN for an IP).
        let config = ClientTlsConfig::new()
            .identity(identity)
            .timeout(TLS_HANDSHAKE_TIMEOUT);
        let config = match ca {
            Some((setting, path)) => {
                config.ca_certificate(Certificate::from_pem(read(setting, path)?))
            }
            None => config.with_native_roots(),
        };
        Ok(PeerTls { config })
    }
}

/// Longest TLS handshake with a peer; a peer that does not finish it is unreachable.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// One channel per peer address, connected on first use and reconnected by tonic.
#[derive(Default)]
pub struct Forwarder {
    /// `None`: plain HTTP/2 (the node serves no TLS).
    tls: Option<PeerTls>,
    channels: Mutex<HashMap<String, Channel>>,
    /// Calls (and sub-batches) sent to another node since start: the Admin/GetStats gauge
    /// `forwarded_calls` (a client that routes by the cluster map keeps it near 0).
    sent: AtomicI64,
}

impl Forwarder {
    /// A forwarder that reaches its peers over TLS with `tls`, or over plain HTTP/2 without.
    pub fn new(tls: Option<PeerTls>) -> Forwarder {
        Forwarder {
            tls,
            ..Forwarder::default()
        }
    }

    /// How many calls this node has forwarded since it started.
    pub fn forwarded(&self) -> i64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn channel(&self, address: &str) -> Result<Channel, ForwardError> {
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| ForwardError::NotSent("forwarder lock poisoned".into()))?;
        if let Some(c) = channels.get(address) {
            return Ok(c.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| ForwardError::NotSent(format!("bad peer address {address:?}: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            // A peer that stops answering (paused, partitioned) fails its calls within ~3 s
            // instead of holding them: HTTP/2 pings every second, 2 s to answer.
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.config.clone()).map_err(|e| {
                ForwardError::NotSent(format!("TLS to peer {address:?}: {}", chain(&e)))
            })?;
        }
        let channel = endpoint.connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    /// Sends `rpc` with `body` to `peer` and returns its encoded reply.
    pub async fn call(
        &self,
        peer: &Peer,
        rpc: Rpc,
        body: Bytes,
        ctx: &CallContext,
    ) -> Result<Vec<u8>, ForwardError> {
        let channel = self.channel(&peer.address)?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut grpc = tonic::client::Grpc::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        grpc.ready().await.map_err(|e| {
            ForwardError::NotSent(format!("node {:?} unreachable: {e}", peer.node_id))
        })?;
        let path =
            http::uri::PathAndQuery::from_str(&format!("/{}/{}", rpc.service().name(), rpc.name()))
                .map_err(|e| ForwardError::NotSent(format!("bad path: {e}")))?;
        let mut request = tonic::Request::new(body);
        let md = request.metadata_mut();
        for (key, value) in &ctx.metadata {
            if key.ends_with("-bin") {
                if let Ok(k) = MetadataKey::from_bytes(key.as_bytes()) {
                    md.append_bin(k, BinaryMetadataValue::from_bytes(value));
                }
            } else if let (Ok(k), Ok(v)) = (
                MetadataKey::from_bytes(key.as_bytes()),
                AsciiMetadataValue::try_from(value.as_slice()),
            ) {
                md.append(k, v);
            }
        }
        if let Ok(v) = AsciiMetadataValue::try_from((ctx.hops + 1).to_string()) {
            md.insert(HOPS_HEADER, v);
        }
        match grpc.unary(request, path, RawCodec).await {
            Ok(reply) => Ok(reply.into_inner().to_vec()),
            // tonic connects lazily: a peer that cannot be reached shows up here.
            Err(status) if not_connected(&status) => Err(ForwardError::NotSent(format!(
                "node {:?} unreachable: {}",
                peer.node_id,
                status.message()
            ))),
            Err(status) => Err(ForwardError::Answered(answered(peer, status))),
        }
    }
}

/// Whether a failed call never reached the peer: the connection could not be made (a status
/// tonic made itself, with the connect error as its source), so the call may go elsewhere.
fn not_connected(status: &tonic::Status) -> bool {
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::AddrNotAvailable
            );
        }
        if e.to_string().contains("tcp connect error") {
            return true;
        }
        source = e.source();
    }
    status.message().contains("tcp connect error")
}

/// The error a peer's status stands for: its own code and message when Silo answers with that
/// code, else (a transport or client-side failure) ShardUnavailable naming it.
fn answered(peer: &Peer, status: tonic::Status) -> Error {
    // A status tonic made from a transport failure (a TLS handshake the peer's certificate
    // failed, a connection cut) carries its cause; a peer's own answer carries none.
    if let Some(cause) = std::error::Error::source(&status) {
        let causes = chain(cause);
        let what = if causes.contains(status.message()) {
            causes
        } else {
            format!("{}: {causes}", status.message())
        };
        return Error::Forwarded {
            code: Code::Unavailable,
            message: format!("forwarding to node {:?} failed: {what}", peer.node_id),
        };
    }
    if let Some(code) = Code::from_i32(status.code() as i32) {
        return Error::Forwarded {
            code,
            message: status.message().to_string(),
        };
    }
    Error::Forwarded {
        code: Code::Unavailable,
        message: format!(
            "forwarding to node {:?} failed: {:?}: {}",
            peer.node_id,
            status.code(),
            status.message()
        ),
    }
}

/// An error and its causes, `: `-separated, each once (wrappers often repeat their cause).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// Request and reply stay bytes: the owner decodes them.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hop_count_is_taken_out_of_the_metadata() {
        let ctx = CallContext::from_metadata(vec![
            ("authorization".into(), b"Bearer x".to_vec()),
            (HOPS_HEADER.into(), b"2".to_vec()),
        ]);
        assert_eq!(ctx.hops, 2);
        assert_eq!(ctx.metadata.len(), 1);
        let bad = CallContext::from_metadata(vec![(HOPS_HEADER.into(), b"x".to_vec())]);
        assert_eq!(
            bad.hops, MAX_HOPS,
            "an unreadable count forwards no further"
        );
    }

    #[test]
    fn an_unreadable_tls_file_names_its_setting() {
        let missing = "/nonexistent/silo-test.pem";
        for (cert, key, ca, setting) in [
            (missing, missing, None, "tls_cert"),
            (
                "Cargo.toml",
                "Cargo.toml",
                Some(("tls_peer_ca", missing)),
                "tls_peer_ca",
            ),
        ] {
            match PeerTls::from_files(cert, key, ca) {
                Err(Error::InvalidArgument { field, reason }) => {
                    assert_eq!(field, setting);
                    assert!(reason.contains(missing), "{reason}");
                }
                other => panic!("expected InvalidArgument on {setting}, got {other:?}"),
            }
        }
    }

    #[test]
    fn an_error_chain_names_each_cause_once() {
        #[derive(Debug)]
        struct Wrapper(&'static str, std::io::Error);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.1)
            }
        }
        let cause = || std::io::Error::new(std::io::ErrorKind::InvalidData, "unknown issuer");
        let error = Wrapper("transport error", cause());
        assert_eq!(chain(&error), "transport error: unknown issuer");
        let repeating = Wrapper("handshake: unknown issuer", cause());
        assert_eq!(chain(&repeating), "handshake: unknown issuer");
    }
}
