//! What the kernel does with shared memory (memfds): whether it gives them transparent huge pages
//! (`/sys/kernel/mm/transparent_hugepage/shmem_enabled`). Titles held in memory ask for them
//! (`library::files`); the object-storage block cache must not get them (`store::arena`).

/// Where the kernel says whether shared memory gets huge pages.
pub const SHMEM_HUGE: &str = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";

/// The selected mode (`never`, `advise`, `always`, `within_size`, `deny`, `force`); `None` where
/// the kernel does not say (no transparent huge pages, or not Linux).
pub fn huge_mode() -> Option<String> {
    let s = std::fs::read_to_string(SHMEM_HUGE).ok()?;
    selected(&s).map(str::to_string)
}

/// The bracketed mode of the file's line.
fn selected(s: &str) -> Option<&str> {
    let open = s.find('[')?;
    let close = s[open..].find(']')? + open;
    Some(&s[open + 1..close])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_mode_is_the_bracketed_one() {
        assert_eq!(
            selected("always within_size advise [never] deny force\n"),
            Some("never")
        );
        assert_eq!(selected("[always] never"), Some("always"));
        assert_eq!(selected("never"), None);
    }
}
