//! A body of a mapped title that hyper sends, copied here first and checked.

use super::Mapped;
use bytes::Bytes;

/// The most of a body [`Copied`] copies at once (a copy held per stream that hyper has not sent
/// yet: with `h2::SEND_BUFFER`, what one stream of a client that reads nothing holds).
const COPY: usize = 64 << 10;

/// A body of a title mapped from disk that hyper sends (HTTP/2, or a connection handed over to
/// it), where hyper or rustls copy it: copied here first, [`COPY`] bytes at a time, and the
/// title's mapping checked after each copy, so that a page cut off under the copy (read as
/// zeros) fails the body (the stream or connection is reset, the response never completes)
/// instead of going out as the title's bytes. Whatever the body is made of (a range, several,
/// a clip's or segment's head and slices): every byte of it is copied before it goes, and a
/// frame that lies in the mapping has its pages read in off the workers first (`pagein`; the
/// body hands out the file part of a clip or range read in already, not its other ranges).
pub(crate) struct Copied<B> {
    body: B,
    since: Mapped,
    /// What is left of the frame being copied.
    rest: Bytes,
    /// The frame's pages being read in, before it is copied.
    reading: Option<std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>>>,
    /// Bytes at the front of `rest` read in already (`usize::MAX`: not of a mapping). A frame
    /// is read in a stretch (`pagein::STRETCH`) at a time as it is copied, not whole first: a
    /// frame of a whole title (a multipart range over HTTP/2) would be read from the disk
    /// whole before its first byte went, and its first pages let go again meanwhile.
    paged: usize,
}

impl<B> Copied<B> {
    pub(crate) fn new(body: B, since: Mapped) -> Copied<B> {
        Copied {
            body,
            since,
            rest: Bytes::new(),
            reading: None,
            paged: 0,
        }
    }
}

impl<B> http_body::Body for Copied<B>
where
    B: http_body::Body<Data = Bytes, Error = std::io::Error> + Unpin,
{
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        use std::task::Poll;
        if self.rest.is_empty() {
            match std::pin::Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        self.rest = data;
                        self.paged = 0;
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return other,
            }
        }
        if self.reading.is_none() && self.paged == 0 && !self.rest.is_empty() {
            // The next stretch of the frame, if it lies in the mapping.
            self.paged = match self.since.locate(&self.rest) {
                Some((file, at)) => {
                    let len = self.rest.len().min(crate::pagein::STRETCH as usize);
                    let file = file.clone();
                    self.reading = Some(Box::pin(async move {
                        crate::pagein::ensure(&file, at, len as u64).await
                    }));
                    len
                }
                None => usize::MAX,
            };
        }
        if let Some(reading) = self.reading.as_mut() {
            std::task::ready!(reading.as_mut().poll(cx));
            self.reading = None;
        }
        let n = self.rest.len().min(COPY);
        self.paged = self.paged.saturating_sub(n);
        let copy = Bytes::copy_from_slice(&self.rest.split_to(n));
        if self.since.cut() {
            let cut = std::io::Error::other("the title's file was cut short while it was sent");
            return Poll::Ready(Some(Err(cut)));
        }
        Poll::Ready(Some(Ok(http_body::Frame::data(copy))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        crate::body::size_hint_plus(self.body.size_hint(), self.rest.len())
    }
}
