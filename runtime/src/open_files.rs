//! The process's limit on open files, raised to what the system allows it: a pipeline holds
//! descriptors for its files, Kafka connections, plugin caches, checkpoints and the clients
//! of its HTTP listeners, and the usual soft limit (1,024 under systemd, less elsewhere) is a
//! cap chosen for programs that do not ask, below the hard limit the administrator set.

/// Raises the soft limit on open files to the hard one; returns the limit now in force.
#[cfg(unix)]
pub fn raise_to_hard_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `getrlimit` and `setrlimit` read and write only the `rlimit` given, which lives
    // for both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

#[cfg(not(unix))]
pub fn raise_to_hard_limit() -> std::io::Result<u64> {
    Err(std::io::Error::other("open-file limits are not managed on this system"))
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = super::raise_to_hard_limit().expect("the limit can be read");
        let mut now = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
        assert_eq!((now.rlim_cur, now.rlim_cur), (limit, now.rlim_max));
    }
}
