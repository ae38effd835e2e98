//! A title as an HTTP entity: what its ranges, validators and caching are (`crate::entity`).

use super::Title;
use std::time::SystemTime;

impl crate::entity::Entity for Title {
    fn len(&self) -> u64 {
        Title::len(self)
    }

    fn content_type(&self) -> &'static str {
        self.container.mime()
    }

    fn etag(&self) -> &str {
        &self.etag
    }

    fn etag_header(&self) -> http::HeaderValue {
        self.etag_header.clone()
    }

    fn last_modified(&self) -> Option<(SystemTime, http::HeaderValue)> {
        // None for a growing recording: a date to the second cannot tell two lengths written
        // within one second apart, and a client revalidating by date would be told 304 for
        // bytes it does not have (its weak tag names the length written).
        (!self.is_growing()).then(|| (self.last_modified, self.last_modified_header.clone()))
    }

    fn cache_control(&self) -> Option<http::HeaderValue> {
        // A growing recording changes with every keyframe: caches must ask again each time.
        self.is_growing()
            .then(|| http::HeaderValue::from_static("no-cache"))
    }

    fn slice(&self, range: crate::range::ByteRange) -> crate::body::Chunks {
        if let Some(obj) = &self.remote {
            return crate::body::Chunks::remote(obj.clone(), range.start..range.end);
        }
        crate::entity::file_backed(&self.data, self.file.as_ref(), range, !self.cached)
    }
}
