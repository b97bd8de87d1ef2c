//! Response bodies and the small set of response shapes the dashboard uses. Every
//! response leaves through [`secure`], which adds the headers that keep pages out of
//! caches and frames and forbid scripts.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// No scripts anywhere; styles are inline in the page; forms post only to this origin.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A whole body written at once, or one streamed from a blocking task (CSV export).
pub enum AdminBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Result<Bytes, std::io::Error>>),
}

impl AdminBody {
    pub fn full(b: impl Into<Bytes>) -> AdminBody {
        let b = b.into();
        AdminBody::Full((!b.is_empty()).then_some(b))
    }

    pub fn empty() -> AdminBody {
        AdminBody::Full(None)
    }
}

impl Body for AdminBody {
    type Data = Bytes;
    /// An error mid-stream aborts the connection, so a client never mistakes a cut-short
    /// export for a whole one.
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            AdminBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            AdminBody::Stream(rx) => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, AdminBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            AdminBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            AdminBody::Full(None) => SizeHint::with_exact(0),
            AdminBody::Stream(_) => SizeHint::default(),
        }
    }
}

pub type Resp = Response<AdminBody>;

pub fn with_type(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(AdminBody::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn html(status: StatusCode, body: String) -> Resp {
    with_type(status, "text/html; charset=utf-8", body)
}

pub fn text(status: StatusCode, body: impl Into<String>) -> Resp {
    with_type(status, "text/plain; charset=utf-8", body.into())
}

/// `303 See Other` to a path on this dashboard.
pub fn see_other(location: &str) -> Resp {
    let mut r = Response::new(AdminBody::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    let v = HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/"));
    r.headers_mut().insert(LOCATION, v);
    r
}

/// Adds the headers every dashboard response carries.
pub fn secure(r: &mut Resp) {
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: with it, browsers send `Origin: null` on form posts, which the
    // login's same-origin check would then refuse.
    h.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn full_and_streamed_bodies() {
        let b = AdminBody::full("hello").collect().await.unwrap().to_bytes();
        assert_eq!(&b[..], b"hello");
        let (tx, rx) = mpsc::channel(2);
        tx.send(Ok(Bytes::from_static(b"a,"))).await.unwrap();
        tx.send(Ok(Bytes::from_static(b"b"))).await.unwrap();
        drop(tx);
        let b = AdminBody::Stream(rx).collect().await.unwrap().to_bytes();
        assert_eq!(&b[..], b"a,b");
        let (tx, rx) = mpsc::channel(1);
        tx.send(Err(std::io::Error::other("disk"))).await.unwrap();
        assert!(AdminBody::Stream(rx).collect().await.is_err());
    }

    #[test]
    fn security_headers() {
        let mut r = html(StatusCode::OK, "<p>x</p>".into());
        secure(&mut r);
        assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(r.headers()[X_FRAME_OPTIONS], "DENY");
        let csp = r.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(!csp.contains("script-src"), "{csp}");
        assert!(csp.starts_with("default-src 'none'"));
    }
}
