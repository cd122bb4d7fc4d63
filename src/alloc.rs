//! Allocator tuning for training on CPU.
//!
//! Every candle op allocates a fresh output buffer (up to ~170 MB per activation at batch 512).
//! glibc serves such sizes with `mmap` and returns them with `munmap`, so the kernel zeroes fresh
//! pages on every op; on a 2-core machine that was 40 % of a training step's time. Keeping freed
//! memory in the heap lets the next step reuse it (measured: 0.75 → 1.25 steps/s at batch 128).

/// Tells glibc malloc never to use `mmap` for large blocks and never to trim the heap, so freed
/// buffers are reused instead of unmapped and re-zeroed, and to keep one arena for all threads:
/// a training step runs on whichever rayon worker picks it up, and with per-thread arenas each
/// one kept its own freed buffers (measured at batch 128: peak RSS 242–271 MiB in 3 of 5 runs,
/// 168–172 MiB with one arena, no difference in step time). No-op on other platforms.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
