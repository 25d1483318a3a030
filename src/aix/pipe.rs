//! stdout as the frame stream: a buffered, unlocked handle on fd 1, and (Linux) a larger pipe
//! buffer when stdout is a pipe. TARGETS.md measured the default 64 KiB pipe as a throughput
//! limit for multi-MiB frames.

use std::io::{self, BufWriter, Write};

/// Bytes buffered before a write reaches the pipe (frames are flushed one by one anyway).
const STDOUT_BUFFER: usize = 1 << 20;

/// A `Send` writer on stdout that bypasses the std line buffering: one frame becomes as few
/// `write` calls as its size allows.
///
/// Errors: the descriptor cannot be duplicated.
pub fn stdout_writer() -> io::Result<Box<dyn Write + Send>> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let fd = io::stdout().as_fd().try_clone_to_owned()?;
        Ok(Box::new(BufWriter::with_capacity(
            STDOUT_BUFFER,
            std::fs::File::from(fd),
        )))
    }
    #[cfg(not(unix))]
    {
        Ok(Box::new(BufWriter::with_capacity(
            STDOUT_BUFFER,
            io::stdout(),
        )))
    }
}

/// Asks the kernel for a 1 MiB stdout pipe buffer when stdout is a pipe (Linux only). Returns
/// whether it was enlarged; failure (not a pipe, over `/proc/sys/fs/pipe-max-size`) is fine.
pub fn enlarge_stdout_pipe() -> bool {
    #[cfg(target_os = "linux")]
    {
        const PIPE_SIZE: libc::c_int = 1 << 20;
        // SAFETY: fcntl on fd 1 with F_SETPIPE_SZ and an integer argument reads no memory of
        // ours; on a non-pipe it fails with EBADF/EINVAL and changes nothing.
        let r = unsafe { libc::fcntl(libc::STDOUT_FILENO, libc::F_SETPIPE_SZ, PIPE_SIZE) };
        r >= PIPE_SIZE
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}
