//! How moim's memory goes back to the kernel after a crowd leaves.
//!
//! Two heaps hold it. Rust's allocations go to jemalloc, whose background
//! thread returns freed pages a few seconds later whatever moim's threads are
//! doing. C libraries allocate from glibc's heap: OpenSSL keeps every DTLS
//! session there, and glibc keeps freed memory in its arenas until asked to
//! trim. Measured with 2,000 signal-only participants joining and leaving
//! (tests/memory_returns_after_a_crowd.rs in crates/moim): glibc's malloc
//! for everything kept 184 MiB against 34 MiB idle.

use std::time::Duration;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How often the C heap is trimmed. Trimming an idle heap costs microseconds.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Turns the policy on: jemalloc's purging thread, and a thread that trims
/// the C heap every [`TRIM_EVERY`]. Says what could not be started; moim
/// runs either way, only holding on to freed memory longer.
pub fn start() -> Result<(), String> {
    std::thread::Builder::new()
        .name("moim-c-heap-trim".into())
        .spawn(|| loop {
            std::thread::sleep(TRIM_EVERY);
            trim_c_heap();
        })
        .map_err(|e| format!("cannot start the C heap trimming thread: {e}"))?;
    tikv_jemalloc_ctl::background_thread::write(true)
        .map(|_| ())
        .map_err(|e| format!("cannot start jemalloc's purging thread: {e}"))
}

/// Gives the free memory at the top of glibc's arenas back to the kernel.
fn trim_c_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a plain integer and only walks glibc's own
    // arenas under their locks; it is safe to call from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
