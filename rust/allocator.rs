//! The extension module's allocator: mimalloc, for Rust allocations only (Python's objects use
//! Python's allocator). SlateDB's write path allocates per key; with glibc malloc, allocation
//! was about 20 % of the broker's CPU in a burn-down.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (`mi_option_purge_delay` in mimalloc v3's header).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays mapped before it goes back to the OS, in ms.
///
/// mimalloc's default (1 s) let a broker filling a 10M-job backlog hold 667 MB resident where
/// returning memory at once held 417 MB. But returning it at once (0) made the broker fault the
/// same pages back in for every batch: in a lease/report loop, 300k page faults per 60k tasks
/// instead of 100k, and 12-25 % more CPU per task (BENCHMARKS.md, "The Python API"). 100 ms
/// keeps what one step frees for the next step, and a 1M-job fill ended at 309 MB resident
/// instead of 282 MB (279 MB against 276 MB after 5 s idle).
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Returns freed memory to the OS shortly after it is freed (see `PURGE_DELAY_MS`) instead of
/// after mimalloc's default delay.
pub fn return_freed_memory_soon() {
    // SAFETY: sets a process-wide option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}
