//! Reading a streamed (`text/event-stream`) answer: the body's bytes, bounded in size,
//! parsed into server-sent events, with transport and parse failures as [`LlmError`]s.
//! Both providers' streaming readers start here.

use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

use super::LlmError;

/// How much a streamed answer may hold.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Bytes in all.
    pub total: usize,
    /// Bytes in one line (one `data:` line is one chunk or delta).
    pub line: usize,
}

/// The bounds of every streamed answer. Far above real answers (a model writes a few
/// MiB at most, in lines of a few hundred bytes), they stop a server that never ends a
/// line or an answer from growing our buffers, and the parser's rescans of an unfinished
/// line, without end.
pub(super) const LIMITS: Limits = Limits {
    total: 32 << 20,
    line: 1 << 20,
};

/// The events of a streamed answer from `url`; an error ends the stream. More bytes
/// than `limits` allow is an [`LlmError::InvalidResponse`].
pub(super) fn events<S>(
    body: S,
    url: &str,
    limits: Limits,
) -> impl Stream<Item = Result<Event, LlmError>>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>>,
{
    let url = url.to_string();
    // (bytes in all, bytes since the last line end); `None` once a read failed: the
    // stream ends with that error.
    let bounded = body.scan(Some((0usize, 0usize)), move |seen, read| {
        let Some((total, line)) = seen.as_mut() else {
            return futures::future::ready(None);
        };
        let read = read
            .map_err(|e| LlmError::from_reqwest(&url, e))
            .and_then(|bytes| {
                *total = total.saturating_add(bytes.len());
                let mut lines = bytes.split(|b| *b == b'\n' || *b == b'\r');
                let mut longest = 0;
                if let Some(rest_of_line) = lines.next() {
                    *line = line.saturating_add(rest_of_line.len());
                    longest = *line;
                }
                for next in lines {
                    *line = next.len();
                    longest = longest.max(*line);
                }
                if *total > limits.total {
                    Err(LlmError::InvalidResponse(format!(
                        "the streamed answer is longer than {} bytes",
                        limits.total
                    )))
                } else if longest > limits.line {
                    Err(LlmError::InvalidResponse(format!(
                        "a line of the streamed answer is longer than {} bytes",
                        limits.line
                    )))
                } else {
                    Ok(bytes)
                }
            });
        if read.is_err() {
            *seen = None;
        }
        futures::future::ready(Some(read))
    });
    bounded.eventsource().map(|event| {
        event.map_err(|e| match e {
            EventStreamError::Transport(e) => e,
            other => LlmError::InvalidResponse(other.to_string()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(reads: Vec<Vec<u8>>) -> impl Stream<Item = Result<Bytes, reqwest::Error>> {
        futures::stream::iter(reads.into_iter().map(|r| Ok(Bytes::from(r))))
    }

    #[tokio::test]
    async fn events_are_read_until_a_size_limit_then_an_error_ends_the_stream() {
        let limits = Limits {
            total: 100,
            line: 40,
        };
        let long_line = vec![
            b"event: a\ndata: 1\n\n".to_vec(),
            b"data: ".to_vec(),
            vec![b'x'; 30],
            vec![b'x'; 30],
            b"\n\n".to_vec(),
        ];
        let got: Vec<Result<Event, LlmError>> =
            events(body(long_line), "u", limits).collect().await;
        assert_eq!(got.len(), 2, "{got:?}");
        let first = got[0].as_ref().unwrap();
        assert_eq!((first.event.as_str(), first.data.as_str()), ("a", "1"));
        assert!(
            matches!(&got[1], Err(LlmError::InvalidResponse(m)) if m.contains("a line of the streamed answer is longer than 40 bytes")),
            "{got:?}"
        );
        let mut ends_in_one_read = b"data: ".to_vec();
        ends_in_one_read.extend([b'x'; 50]);
        ends_in_one_read.extend(b"\n\n");
        let got: Vec<Result<Event, LlmError>> = events(body(vec![ends_in_one_read]), "u", limits)
            .collect()
            .await;
        assert!(
            matches!(&got[..], [Err(LlmError::InvalidResponse(m))] if m.contains("a line of")),
            "{got:?}"
        );
        let many_lines = vec![b"data: 1\n\n".to_vec(); 12];
        let got: Vec<Result<Event, LlmError>> =
            events(body(many_lines), "u", limits).collect().await;
        assert_eq!(got.iter().filter(|e| e.is_ok()).count(), 11, "{got:?}");
        assert!(
            matches!(got.last(), Some(Err(LlmError::InvalidResponse(m))) if m.contains("answer is longer than 100 bytes")),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn bytes_that_are_not_utf8_are_an_unreadable_answer() {
        let reads = vec![b"data: \xff\xfe\n\n".to_vec()];
        let got: Vec<Result<Event, LlmError>> = events(body(reads), "u", LIMITS).collect().await;
        assert!(
            matches!(got.first(), Some(Err(LlmError::InvalidResponse(_)))),
            "{got:?}"
        );
    }
}
