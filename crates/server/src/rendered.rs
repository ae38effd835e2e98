//! Bodies rendered from the whole library (`GET /api/videos`, the page at `/`), kept for a
//! moment and shared: a client that sends many such requests (or opens HTTP/2 streams for them
//! and resets them at once) costs one render a second, not one per request. A rescan (a new
//! library) renders again at once; a growing recording's title shows its new length within
//! [`FRESH`].

use crate::library::Library;
use bytes::Bytes;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long a body is shared.
pub const FRESH: Duration = Duration::from_secs(1);

/// One body, the library it was rendered from (a `Weak`: while it is held, no other library
/// can be at its address), and when.
#[derive(Debug, Default)]
pub(crate) struct Rendered(Mutex<Option<(Weak<Library>, Instant, Bytes)>>);

impl Rendered {
    /// The body for `lib`: the one kept, if it is of `lib` and fresh; else `render`'s, kept.
    pub(crate) fn get(&self, lib: &Arc<Library>, render: impl FnOnce() -> Bytes) -> Bytes {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((of, at, body)) = kept.as_ref() {
            if std::ptr::eq(of.as_ptr(), Arc::as_ptr(lib)) && at.elapsed() < FRESH {
                return body.clone();
            }
        }
        let body = render();
        *kept = Some((Arc::downgrade(lib), Instant::now(), body.clone()));
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_shared_for_its_library_and_rendered_again_for_a_new_one() {
        let kept = Rendered::default();
        let now = std::time::SystemTime::now();
        let (a, b) = (
            Arc::new(Library::from_static(&[], now)),
            Arc::new(Library::from_static(&[], now)),
        );
        let mut renders = 0;
        let mut render = |s: &'static str| {
            renders += 1;
            Bytes::from_static(s.as_bytes())
        };
        assert_eq!(kept.get(&a, || render("one")), "one");
        assert_eq!(kept.get(&a, || render("two")), "one", "shared");
        assert_eq!(
            kept.get(&b, || render("three")),
            "three",
            "a rescan's library"
        );
        assert_eq!(renders, 2);
    }
}
