//! What a command that reads the whole log asks of its process. `audit-log` and `export` read
//! the log in pages of thousands of events, each page's memory freed while the next ones are
//! read, for as long as the log is long.

/// Turns transparent huge pages off for the rest of this process (`prctl(PR_SET_THP_DISABLE)`).
///
/// mimalloc asks for huge pages on its arenas; a page of the log freed and the next one
/// allocated returned parts of them to the kernel and faulted them in again, zeroed two
/// megabytes at a time: in `consent-ledger audit-log` over a million events a seventh of the
/// samples were the kernel clearing pages, and its system time moved between 0.6 and 1.0 s
/// from run to run (BENCHMARKS.md, "The bulk commands without huge pages"). `serve` keeps
/// them: its hot index is read at random and is not freed.
pub fn without_huge_pages() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "transparent huge pages stay as the kernel sets them");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_asks_for_no_huge_pages_after_it() {
        super::without_huge_pages();
        assert_eq!(
            rustix::thread::transparent_huge_pages_are_disabled().ok(),
            Some(true)
        );
    }
}
