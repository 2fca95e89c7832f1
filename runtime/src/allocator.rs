//! The C allocator's settings for a stream processor, whose batches of a few megabytes are
//! allocated on one thread and freed on another all the time.
//!
//! With glibc's defaults, new batches kept faulting their pages in again (freed memory went
//! back to the kernel, and large blocks got mappings of their own): on a Nexmark q0 run,
//! half of the system time, and 5–7 % of all CPU. Blocks up to 32 MiB now come from the
//! heap, and the heap is trimmed once 64 MiB lie free at its top.

/// Allocations below this come from the heap, not from their own mapping.
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of the heap kept for the next batches.
const TRIM_THRESHOLD: i32 = 64 << 20;

/// Applies the settings, unless `GLIBC_TUNABLES` sets the allocator's own (the user's
/// choice wins). Call it first in `main`, before any thread starts.
pub fn tune() {
    if !tuned_by_user(std::env::var("GLIBC_TUNABLES").ok().as_deref()) {
        apply();
    }
}

/// Whether `GLIBC_TUNABLES` (its value, if set) sets any of the allocator's parameters.
fn tuned_by_user(tunables: Option<&str>) -> bool {
    tunables.is_some_and(|tunables| tunables.split(':').any(|tunable| tunable.starts_with("glibc.malloc.")))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() {
    // SAFETY: `mallopt` only changes two of glibc's allocator parameters; it is called before
    // the process starts any thread, and both values are within the ranges glibc accepts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() {}

/// Gives the memory freed on every thread's heap back to the kernel: after a rare large
/// request (an upload of up to 256 MiB is read in many small pieces, each on the heap), which
/// the trim threshold would otherwise keep for batches that never need it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: `malloc_trim` only returns free memory to the kernel; it is safe at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_allocator_tunables_win() {
        assert!(!tuned_by_user(None));
        assert!(!tuned_by_user(Some("")));
        assert!(!tuned_by_user(Some("glibc.pthread.rseq=0")));
        assert!(tuned_by_user(Some("glibc.malloc.trim_threshold=0")));
        assert!(tuned_by_user(Some("glibc.pthread.rseq=0:glibc.malloc.arena_max=2")));
    }
}
