//! Clocks, absolute-deadline sleeps and best-effort real-time settings for group threads.
//!
//! Every setting here is best effort: when the OS refuses (no `CAP_SYS_NICE`, a container, a
//! CPU that does not exist), one warning is logged and the pipeline goes on.
use nix::time::{clock_gettime, clock_nanosleep, ClockId, ClockNanosleepFlags};
use std::time::Duration;

/// `CLOCK_MONOTONIC` in ns: latency measurements and deadlines.
#[inline]
pub fn monotonic_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// `CLOCK_REALTIME` in ns since the UNIX epoch: sample timestamps.
pub fn realtime_ns() -> i64 {
    clock_gettime(ClockId::CLOCK_REALTIME).map(|t| t.tv_sec() * 1_000_000_000 + t.tv_nsec()).unwrap_or(0)
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `deadline_ns` (an absolute deadline, so lateness
/// never accumulates). Returns at once if it has passed.
pub fn sleep_until_ns(deadline_ns: u64) {
    let ts = nix::sys::time::TimeSpec::from(Duration::from_nanos(deadline_ns));
    while let Err(nix::Error::EINTR) =
        clock_nanosleep(ClockId::CLOCK_MONOTONIC, ClockNanosleepFlags::TIMER_ABSTIME, &ts)
    {}
}

/// Sets the calling thread's timer slack to 1 ns, so sleeps end at their deadline rather than
/// up to 50 µs after it (the Linux default).
pub fn min_timer_slack() {
    if let Err(e) = nix::sys::prctl::set_timerslack(1) {
        tracing::debug!(error = %e, "could not set timer slack");
    }
}

/// Pins the calling thread to one CPU.
pub fn pin_to_cpu(cpu: usize) {
    pin_to_cpus(&[cpu]);
}

/// Confines the calling thread to `cpus` (none: leaves it where it is).
pub fn pin_to_cpus(cpus: &[usize]) {
    if cpus.is_empty() {
        return;
    }
    if let Err(e) = set_thread_cpus(nix::unistd::Pid::from_raw(0), cpus) {
        tracing::warn!(?cpus, error = %e, "could not pin thread to its CPUs; running unpinned");
    }
}

/// Confines thread `tid` of this process (0: the calling thread) to `cpus`.
pub fn set_thread_cpus(tid: nix::unistd::Pid, cpus: &[usize]) -> nix::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    cpus.iter().try_for_each(|&c| set.set(c))?;
    nix::sched::sched_setaffinity(tid, &set)
}

/// The CPUs the calling thread may run on (empty if the system will not say).
pub fn allowed_cpus() -> Vec<usize> {
    let Ok(set) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) else { return Vec::new() };
    (0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect()
}

/// Parses a CPU list as Linux writes them (`2`, `0-2`, `0,2-3`).
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim) {
        let num =
            |v: &str| v.trim().parse::<usize>().map_err(|_| format!("`{v}` is not a CPU number in `{s}`"));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("`{part}`: a range goes from low to high"));
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(num(part)?),
        }
    }
    if let Some(&c) = cpus.iter().find(|&&c| c >= nix::sched::CpuSet::count()) {
        return Err(format!("CPU {c} is beyond what this system can address"));
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Gives the calling thread `SCHED_FIFO` at `priority` (1–99).
pub fn set_fifo_priority(priority: u8) {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy, ThreadPriority,
        ThreadSchedulePolicy,
    };
    let prio =
        ThreadPriority::from_posix(thread_priority::ScheduleParams { sched_priority: priority as i32 });
    let policy = ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), prio, policy) {
        tracing::warn!(priority, error = ?e, "could not set SCHED_FIFO; running at normal priority");
    }
}

/// Lowers the calling thread's CPU priority (a positive nice value), for threads that serve
/// people rather than samples (HTTP, WebSocket fan-out): on a contended core the pipeline's
/// threads run first, so a burst of clients cannot delay a packet. Needs no privileges.
pub fn lower_priority() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy, ThreadPriority,
        ThreadPriorityValue, ThreadSchedulePolicy,
    };
    // Crossplatform 30 of 0..=99 maps to a nice value of about +6 under SCHED_OTHER.
    let Ok(value) = ThreadPriorityValue::try_from(30u8) else { return };
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
    if let Err(e) =
        set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Crossplatform(value), policy)
    {
        tracing::debug!(error = ?e, "could not lower the thread's priority");
    }
}

/// Locks the process's memory so page faults cannot stall the data path.
pub fn lock_memory() {
    use nix::sys::mman::{mlockall, MlockAllFlags};
    if let Err(e) = mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE) {
        tracing::warn!(error = %e, "could not mlockall; memory may be paged");
    }
}

#[cfg(test)]
mod tests {
    /// The calling thread's nice value, from `/proc/thread-self/stat` (field 19).
    fn nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The command name (field 2) may hold spaces: count fields after its closing `)`.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn lower_priority_makes_only_the_calling_thread_nicer() {
        let before = nice();
        let lowered = std::thread::spawn(|| {
            super::lower_priority();
            nice()
        })
        .join()
        .unwrap();
        assert!(lowered > before, "nice {lowered}, was {before}");
        assert_eq!(nice(), before, "other threads keep their priority");
    }

    #[test]
    fn cpu_lists_parse_as_linux_writes_them() {
        use super::parse_cpu_list;
        assert_eq!(parse_cpu_list("2"), Ok(vec![2]));
        assert_eq!(parse_cpu_list("0-2"), Ok(vec![0, 1, 2]));
        assert_eq!(parse_cpu_list("3, 0-1,1"), Ok(vec![0, 1, 3]));
        assert!(parse_cpu_list("1-0").unwrap_err().contains("low to high"));
        assert!(parse_cpu_list("a").unwrap_err().contains("`a` is not a CPU number"));
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("100000").unwrap_err().contains("beyond"));
    }

    #[test]
    fn pinning_confines_only_the_calling_thread() {
        let everywhere = super::allowed_cpus();
        assert!(!everywhere.is_empty());
        let first = everywhere[0];
        let pinned = std::thread::spawn(move || {
            super::pin_to_cpus(&[first]);
            super::allowed_cpus()
        })
        .join()
        .unwrap();
        assert_eq!(pinned, vec![first]);
        assert_eq!(super::allowed_cpus(), everywhere, "other threads keep their CPUs");
    }
}
