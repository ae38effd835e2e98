//! Who may fetch what, decided without I/O. Publish keys live with the live registry
//! (`live::registry`); the admin token with the control API (`http::admin`).
//!
//! - [`signed`]: signed URLs for titles and live HLS (an HMAC of a path and an expiry, in the
//!   style of nginx's `secure_link`), so that links expire while a CDN caches the bytes.

pub mod signed;
