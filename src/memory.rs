//! Process-wide allocator settings of the `nex` and `aix` binaries (glibc on Linux only; a
//! no-op elsewhere). Called once at the start of `main`, before any thread exists.
//!
//! Why: with glibc's defaults, peak RSS ran far above the live heap (issue 12: nex held a
//! 182 MiB heap in 318 MiB of RSS).
//! - Every thread that allocates gets its own arena (up to 8 per core), and memory freed in
//!   one arena is never reused by another: the parse pool of aix and the writer and dropper
//!   threads of nex each kept their own high-water mark. [`ARENA_MAX`] arenas are shared.
//! - Blocks above the mmap threshold are mapped on their own and unmapped when freed, but the
//!   threshold climbs (up to 32 MiB) each time such a block is freed: after a few large items,
//!   items of tens of MiB live in the heap, and the heap is trimmed only from its top. A fixed
//!   [`MMAP_THRESHOLD`] returns every large transient buffer (an item, a frame, a file read
//!   whole) to the kernel when it is freed; a fixed [`TRIM_THRESHOLD`] keeps trimming too.
//!
//! A user's own `MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` or `MALLOC_TRIM_THRESHOLD_`
//! wins: the setting it names is left as glibc read it.

/// Arenas shared by all threads.
pub const ARENA_MAX: i32 = 2;
/// Bytes from which a block gets its own mapping (returned to the kernel on free).
pub const MMAP_THRESHOLD: i32 = 4 << 20;
/// Free bytes at the top of the heap above which glibc gives them back.
pub const TRIM_THRESHOLD: i32 = 8 << 20;

/// Applies the settings above; returns how many took effect (0 off glibc).
pub fn tune_allocator() -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let settings = [
            ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, ARENA_MAX),
            (
                "MALLOC_MMAP_THRESHOLD_",
                libc::M_MMAP_THRESHOLD,
                MMAP_THRESHOLD,
            ),
            (
                "MALLOC_TRIM_THRESHOLD_",
                libc::M_TRIM_THRESHOLD,
                TRIM_THRESHOLD,
            ),
        ];
        settings
            .into_iter()
            .filter(|(var, _, _)| std::env::var_os(var).is_none())
            // SAFETY: `mallopt` only sets allocator parameters; it takes plain integers, touches
            // no memory of ours, and glibc serialises it with its own lock.
            .filter(|&(_, param, value)| unsafe { libc::mallopt(param, value) } == 1)
            .count()
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_every_setting() {
        let unset = [
            "MALLOC_ARENA_MAX",
            "MALLOC_MMAP_THRESHOLD_",
            "MALLOC_TRIM_THRESHOLD_",
        ]
        .iter()
        .filter(|v| std::env::var_os(v).is_none())
        .count();
        assert_eq!(super::tune_allocator(), unset);
    }
}
