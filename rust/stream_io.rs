//! One stream RPC's buffers (EnqueueStream, WorkerSession; docs/api.md#streams): raw request
//! bytes in, encoded answers out, between the transport and the stream's pump.
//!
//! The transport (the gRPC server, through rust/py/streams.rs) `push`es each request's bytes as
//! it reads them and takes the encoded answers with `next`; the pump (`Broker::serve_stream`, one
//! future per stream on tokio) `take`s the requests in bulk, decodes them, calls the shard and
//! `answer`s. Nothing but bytes crosses, so the transport does no per-message work beyond
//! routing them.
//!
//! Window: a stream holds at most `WINDOW_REQUESTS` requests and `WINDOW_BYTES` bytes of them
//! (always at least one) that were read and are not yet *done*. A request is done once the
//! transport has taken its answer (or, for one that has no answer, such as a session's credits,
//! once the pump has applied it). `push` says when the window is full; the transport then stops
//! reading until `room`. Since the transport takes the next answers only after it has sent the
//! last ones, a client that sends without reading answers holds bounded server memory: what it
//! sends beyond the window waits in HTTP/2 flow control, on its side.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::error::{Error, Result};

/// Requests of one stream read and not yet done, at most.
pub const WINDOW_REQUESTS: usize = 1000;
/// Bytes of such requests, at most (a larger single request is still read, alone).
pub const WINDOW_BYTES: usize = 16 << 20;

/// Requests, and their encoded bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub requests: usize,
    pub bytes: usize,
}

impl Usage {
    pub const NONE: Usage = Usage {
        requests: 0,
        bytes: 0,
    };

    /// One request of `bytes` bytes.
    pub fn one(bytes: usize) -> Usage {
        Usage { requests: 1, bytes }
    }

    /// The requests of `batch`.
    pub fn of(batch: &[Bytes]) -> Usage {
        Usage {
            requests: batch.len(),
            bytes: batch.iter().map(Bytes::len).sum(),
        }
    }

    pub fn add(&mut self, other: Usage) {
        self.requests += other.requests;
        self.bytes += other.bytes;
    }

    fn sub(&mut self, other: Usage) {
        self.requests = self.requests.saturating_sub(other.requests);
        self.bytes = self.bytes.saturating_sub(other.bytes);
    }
}

/// Gauges over every stream of a broker (Admin/GetStats `streams`, `stream_requests`).
#[derive(Debug, Default)]
pub struct StreamGauges {
    /// Streams open.
    pub streams: AtomicI64,
    /// Requests read from streams and not yet done (each stream holds at most its window).
    pub requests: AtomicI64,
}

/// What the transport's `next` gets.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// Encoded answers, in order: send them, then ask again.
    Answers(Vec<Vec<u8>>),
    /// The stream is over: OK, or the error that ends it. Every answer was taken before.
    End(Result<()>),
}

/// The transport's writer, parked until answers or the end are ready (see `next_or_park`).
pub type Writer = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    requests: VecDeque<Bytes>,
    input_closed: bool,
    answers: Vec<Vec<u8>>,
    /// The requests that the answers waiting in `answers` complete.
    answered: Usage,
    end: Option<Result<()>>,
    /// Requests pushed and not yet done.
    held: Usage,
    /// Whether the stream still counts in the broker's gauges (until the transport has taken
    /// its end, cancelled it, or dropped it).
    gauged: bool,
    /// A writer parked by `next_or_park`, called once answers or the end are ready.
    writer: Option<Writer>,
}

impl State {
    fn has_room(&self) -> bool {
        self.held.requests == 0
            || (self.held.requests < WINDOW_REQUESTS && self.held.bytes < WINDOW_BYTES)
    }
}

/// One stream's buffers; shared by the transport and the pump (see the module doc).
pub struct StreamIo {
    state: Mutex<State>,
    /// Wakes the pump: requests arrived or the input closed.
    to_pump: Notify,
    /// Wakes the transport's writer: answers or the end are ready.
    to_writer: Notify,
    /// Wakes the transport's reader: the window has room again.
    to_reader: Notify,
    gauges: Arc<StreamGauges>,
}

impl StreamIo {
    pub fn new(gauges: Arc<StreamGauges>) -> StreamIo {
        gauges.streams.fetch_add(1, Ordering::Relaxed);
        StreamIo {
            state: Mutex::new(State {
                gauged: true,
                ..State::default()
            }),
            to_pump: Notify::new(),
            to_writer: Notify::new(),
            to_reader: Notify::new(),
            gauges,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; should it ever, the state is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ------------------------------------------------------------------- transport side

    /// Queues one request read from the stream; false once the window is full (stop reading
    /// until `room`). Requests pushed after `close_input` or the end are dropped. The pump sees
    /// them at the next `wake`: a transport that reads several requests in one go (one
    /// event-loop iteration) wakes the pump once for all of them.
    pub fn push(&self, request: Bytes) -> bool {
        let usage = Usage::one(request.len());
        let mut st = self.lock();
        if st.input_closed || st.end.is_some() {
            return true;
        }
        st.requests.push_back(request);
        st.held.add(usage);
        let room = st.has_room();
        if st.gauged {
            self.gauges.requests.fetch_add(1, Ordering::Relaxed);
        }
        room
    }

    /// Hands the requests pushed so far to the pump (wakes it).
    pub fn wake(&self) {
        self.to_pump.notify_one();
    }

    /// Whether the window has room for another request.
    pub fn has_room(&self) -> bool {
        self.lock().has_room()
    }

    /// Resolves once the window has room (or the stream is over).
    pub async fn room(&self) {
        loop {
            {
                let st = self.lock();
                if st.has_room() || st.end.is_some() {
                    return;
                }
            }
            self.to_reader.notified().await;
        }
    }

    /// No more requests: the client closed its side, or the server stops reading (shutdown).
    /// The pump answers what it holds, then ends the stream.
    pub fn close_input(&self) {
        self.lock().input_closed = true;
        self.to_pump.notify_one();
    }

    /// The answers ready now, in order, once there are some; or the end, once every answer
    /// was taken. Taking answers completes their requests (the window gains room).
    pub async fn next(&self) -> Next {
        loop {
            if let Some(next) = self.take_next(&mut self.lock()) {
                return next;
            }
            self.to_writer.notified().await;
        }
    }

    /// `next` without waiting: what is ready now; else None, and `writer` is called (once, from
    /// the pump's thread) when answers or the end become ready, to call this again. Why: a
    /// transport on another runtime (the Python event loop) then takes answers that are already
    /// there without any thread switch, and otherwise wakes once per batch.
    pub fn next_or_park(&self, writer: Writer) -> Option<Next> {
        let mut st = self.lock();
        let next = self.take_next(&mut st);
        if next.is_none() {
            st.writer = Some(writer);
        }
        next
    }

    fn take_next(&self, st: &mut State) -> Option<Next> {
        if !st.answers.is_empty() {
            let answers = std::mem::take(&mut st.answers);
            let answered = std::mem::take(&mut st.answered);
            self.release(st, answered);
            return Some(Next::Answers(answers));
        }
        let end = st.end.clone()?;
        self.ungauge(st);
        Some(Next::End(end))
    }

    /// Ends the stream from the transport's side (it is going away): the pump's answers are
    /// dropped from now on, and waiters wake.
    pub fn cancel(&self) {
        self.finish(Err(Error::StoreUnavailable(
            "the stream was cancelled".into(),
        )));
        self.ungauge(&mut self.lock());
    }

    // ------------------------------------------------------------------------ pump side

    /// The requests queued now, at most `max`, oldest first, once there are some; None once the
    /// input is closed and every request was taken.
    pub async fn take(&self, max: usize) -> Option<Vec<Bytes>> {
        loop {
            {
                let mut st = self.lock();
                if !st.requests.is_empty() {
                    let n = st.requests.len().min(max.max(1));
                    return Some(st.requests.drain(..n).collect());
                }
                if st.input_closed || st.end.is_some() {
                    return None;
                }
            }
            self.to_pump.notified().await;
        }
    }

    /// Queues encoded answers for the transport; `done` are the requests they complete.
    pub fn answer(&self, answers: Vec<Vec<u8>>, done: Usage) {
        if answers.is_empty() {
            self.done(done);
            return;
        }
        let mut st = self.lock();
        if st.end.is_some() {
            return;
        }
        let wake = st.answers.is_empty();
        st.answers.extend(answers);
        st.answered.add(done);
        let writer = st.writer.take();
        drop(st);
        if wake {
            self.to_writer.notify_one();
        }
        if let Some(writer) = writer {
            writer();
        }
    }

    /// Requests that are done without an answer.
    pub fn done(&self, done: Usage) {
        let mut st = self.lock();
        self.release(&mut st, done);
    }

    /// Ends the stream once the transport has taken the answers queued so far: Ok, or the error
    /// the stream ends with. The first end wins.
    pub fn finish(&self, end: Result<()>) {
        let mut st = self.lock();
        if st.end.is_none() {
            st.end = Some(end);
        }
        let writer = st.writer.take();
        drop(st);
        if let Some(writer) = writer {
            writer();
        }
        self.to_writer.notify_one();
        self.to_reader.notify_one();
        self.to_pump.notify_one();
    }

    fn release(&self, st: &mut State, done: Usage) {
        if done == Usage::NONE {
            return;
        }
        let had_room = st.has_room();
        st.held.sub(done);
        if st.gauged {
            self.gauges
                .requests
                .fetch_sub(done.requests as i64, Ordering::Relaxed);
        }
        if !had_room && st.has_room() {
            self.to_reader.notify_one();
        }
    }
}

impl StreamIo {
    /// The stream leaves the gauges (once): its held requests and itself.
    fn ungauge(&self, st: &mut State) {
        if st.gauged {
            st.gauged = false;
            self.gauges
                .requests
                .fetch_sub(st.held.requests as i64, Ordering::Relaxed);
            self.gauges.streams.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for StreamIo {
    fn drop(&mut self) {
        self.ungauge(&mut self.lock());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> StreamIo {
        StreamIo::new(Arc::new(StreamGauges::default()))
    }

    #[tokio::test]
    async fn the_window_fills_and_answers_taken_free_it() {
        let io = io();
        for i in 0..WINDOW_REQUESTS {
            let room = io.push(Bytes::from_static(b"r"));
            assert_eq!(room, i + 1 < WINDOW_REQUESTS, "push {i}");
        }
        assert_eq!(
            io.gauges.requests.load(Ordering::Relaxed),
            WINDOW_REQUESTS as i64
        );
        io.wake();
        let batch = io.take(10).await.unwrap();
        assert_eq!(batch.len(), 10);
        // Answered is not done: the transport has not taken the answers yet.
        io.answer(vec![b"a".to_vec(); 10], Usage::of(&batch));
        assert!(!io.has_room());
        assert_eq!(io.next().await, Next::Answers(vec![b"a".to_vec(); 10]));
        assert!(io.has_room());
        io.room().await;
        assert_eq!(
            io.gauges.requests.load(Ordering::Relaxed),
            (WINDOW_REQUESTS - 10) as i64
        );
    }

    #[tokio::test]
    async fn bytes_bound_the_window_but_one_request_always_fits() {
        let io = io();
        assert!(!io.push(Bytes::from(vec![0u8; WINDOW_BYTES + 1])));
        let batch = io.take(100).await.unwrap();
        io.done(Usage::of(&batch));
        assert!(io.has_room());
        assert!(io.push(Bytes::from(vec![0u8; WINDOW_BYTES / 2])));
        assert!(!io.push(Bytes::from(vec![0u8; WINDOW_BYTES / 2])));
    }

    #[tokio::test]
    async fn the_end_comes_after_every_answer_and_input_ends_the_takes() {
        let io = io();
        io.push(Bytes::from_static(b"x"));
        io.close_input();
        let batch = io.take(5).await.unwrap();
        assert_eq!(io.take(5).await, None);
        io.answer(vec![b"1".to_vec()], Usage::of(&batch));
        io.finish(Ok(()));
        assert_eq!(io.next().await, Next::Answers(vec![b"1".to_vec()]));
        assert_eq!(io.next().await, Next::End(Ok(())));
        // A push after the end is dropped.
        assert!(io.push(Bytes::from_static(b"late")));
        assert_eq!(io.gauges.requests.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn the_end_taken_or_a_cancel_clears_the_gauges() {
        let gauges = Arc::new(StreamGauges::default());
        let io = StreamIo::new(gauges.clone());
        io.push(Bytes::from_static(b"x"));
        io.finish(Ok(()));
        assert_eq!(io.next().await, Next::End(Ok(())));
        assert_eq!(gauges.streams.load(Ordering::Relaxed), 0);
        assert_eq!(gauges.requests.load(Ordering::Relaxed), 0);
        let other = StreamIo::new(gauges.clone());
        other.push(Bytes::from_static(b"y"));
        other.cancel();
        assert_eq!(gauges.streams.load(Ordering::Relaxed), 0);
        assert_eq!(gauges.requests.load(Ordering::Relaxed), 0);
        drop((io, other));
        assert_eq!(gauges.streams.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_parked_writer_is_called_once_answers_are_ready() {
        let io = Arc::new(io());
        let called = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = called.clone();
        let parked = io.next_or_park(Box::new(move || flag.store(true, Ordering::SeqCst)));
        assert!(parked.is_none());
        io.push(Bytes::from_static(b"r"));
        io.wake();
        let batch = io.take(1).await.unwrap();
        io.answer(vec![b"a".to_vec()], Usage::of(&batch));
        assert!(called.load(Ordering::SeqCst));
        let ready = io.next_or_park(Box::new(|| panic!("not parked: answers are ready")));
        assert_eq!(ready, Some(Next::Answers(vec![b"a".to_vec()])));
    }

    #[tokio::test]
    async fn dropping_the_stream_clears_its_gauges() {
        let gauges = Arc::new(StreamGauges::default());
        let io = StreamIo::new(gauges.clone());
        io.push(Bytes::from_static(b"x"));
        assert_eq!(gauges.streams.load(Ordering::Relaxed), 1);
        drop(io);
        assert_eq!(gauges.streams.load(Ordering::Relaxed), 0);
        assert_eq!(gauges.requests.load(Ordering::Relaxed), 0);
    }
}
