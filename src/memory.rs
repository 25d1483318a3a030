//! Process-wide allocator settings of the `nex` and `aix` binaries (glibc on Linux only; a
//! no-op elsewhere). Applied once at the start of `main`, before any thread exists.
//!
//! Why: with glibc's defaults, peak RSS ran far above the live heap (issue 12: nex held a
//! 182 MiB heap in 318 MiB of RSS).
//! - Every thread that allocates gets its own arena (up to 8 per core), and memory freed in
//!   one arena is never reused by another: the parse pool of aix and the writer and dropper
//!   threads of nex each kept their own high-water mark. One arena ([`ARENA_MAX`]) is shared
//!   by all threads; small blocks still come from each thread's own cache (glibc's tcache)
//!   without taking the arena's lock.
//! - Blocks above the mmap threshold are mapped on their own and unmapped when freed, but the
//!   threshold climbs (up to 32 MiB) each time such a block is freed: after a few large items,
//!   items of tens of MiB live in the heap, and the heap is trimmed only from its top. A fixed
//!   [`MMAP_THRESHOLD`] returns every large transient buffer (an item, a frame, a file read
//!   whole) to the kernel when it is freed; a fixed [`TRIM_THRESHOLD`] keeps trimming too.
//!
//! How, without `unsafe` (STYLE.md): glibc reads its `MALLOC_*` environment variables
//! (mallopt(3)) when the process starts, so [`tune_allocator`] re-executes the binary once,
//! same arguments and process id, with them set. The variables stay in the environment, so
//! the `aix` workers `nex` starts inherit them and start tuned.
//!
//! The values, measured with `nex-bench backfill --corpus <2,000 sessions> --runs 1` (peak RSS
//! aix + nex; total CPU), 2026-12-06, load 1.5-2: glibc's defaults 435 MiB (the earlier
//! measurement); 2 arenas alone 339 MiB, 26.9 s; with 4 MiB / 8 MiB thresholds 326 MiB but
//! 29.6 s (every buffer above 4 MiB mapped and faulted in anew); with 16 MiB / 32 MiB 338 MiB,
//! 24.6 s. The arenas make the difference; the thresholds are kept at 16 / 32 MiB so that an
//! item of tens of MiB still goes back to the kernel when freed, at no cost in CPU.
//! 2026-12-07, same command, two runs of each alternated (load 3-4.5): 2 arenas 273 and 275 MiB
//! (aix 129-143, nex 132-144), 35.6 and 29.5 s; 1 arena 203 and 202 MiB (aix 95, nex 107-108),
//! 29.5 and 30.5 s: a third less memory at no measurable cost in CPU. At 4,000 sessions, one run
//! each: 2 arenas 313 MiB, 1 arena 219 MiB.
//!
//! A user who sets any of the three variables keeps glibc's reading of their environment as it
//! is: nothing is added and nothing re-executed. When the re-execution cannot happen (the
//! binary was replaced on disk, `exec` refused), the process goes on with glibc's defaults.

/// Arenas shared by all threads: one.
pub const ARENA_MAX: usize = 1;
/// Bytes from which a block gets its own mapping (returned to the kernel on free).
pub const MMAP_THRESHOLD: usize = 16 << 20;
/// Free bytes at the top of the heap above which glibc gives them back.
pub const TRIM_THRESHOLD: usize = 32 << 20;

/// The environment variables glibc reads for the settings above, with their values.
pub fn settings() -> [(&'static str, String); 3] {
    [
        ("MALLOC_ARENA_MAX", ARENA_MAX.to_string()),
        ("MALLOC_MMAP_THRESHOLD_", MMAP_THRESHOLD.to_string()),
        ("MALLOC_TRIM_THRESHOLD_", TRIM_THRESHOLD.to_string()),
    ]
}

/// Whether this process should re-execute itself to apply [`settings`]: on glibc, when none of
/// their variables is in the environment.
pub fn needs_tuning() -> bool {
    cfg!(all(target_os = "linux", target_env = "gnu"))
        && settings()
            .iter()
            .all(|(var, _)| std::env::var_os(var).is_none())
}

/// Applies [`settings`] (see the module doc): re-executes the running binary with them when
/// [`needs_tuning`]; returns only when no re-execution was needed, or it failed (its reason is
/// not reported: tracing is not set up yet, and the process runs untuned as before).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        if !needs_tuning() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            command.arg0(arg0);
        }
        command.args(args).envs(settings());
        // `exec` returns only on failure; the process then runs untuned.
        let _failed = command.exec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_are_glibc_variables_with_decimal_values() {
        let names: Vec<&str> = settings().iter().map(|(v, _)| *v).collect();
        assert_eq!(
            names,
            [
                "MALLOC_ARENA_MAX",
                "MALLOC_MMAP_THRESHOLD_",
                "MALLOC_TRIM_THRESHOLD_"
            ]
        );
        let values: Vec<String> = settings().into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, ["1", "16777216", "33554432"]);
    }
}
