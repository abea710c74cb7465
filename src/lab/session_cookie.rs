//! Tomcat's HTTP session cookie, `JSESSIONID`, read and written in one place: the lab's Jahia
//! sets it, the lab's balancer pins sessions on it (a stick table on `res.cook(JSESSIONID)` /
//! `req.cook(JSESSIONID)`) and the load generator's users send it back.
//!
//! The name is Tomcat's default session cookie name (Apache Tomcat 9 configuration reference,
//! "The Context Container", `sessionCookieName`: "JSESSIONID" unless the context or the
//! application's `SessionCookieConfig` names another). A new session's cookie is the
//! one Tomcat writes for a web application at the root context (`Path=/`, `HttpOnly`: Tomcat 9
//! `org.apache.catalina.core.ApplicationSessionCookieConfig#createSessionCookie`, with the
//! context's `useHttpOnly` default true).

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};

/// The cookie's name.
pub(crate) const NAME: &str = "JSESSIONID";

/// The session id in one `name=value` pair, if it is the session cookie.
fn value_of(pair: &str) -> Option<&str> {
    pair.trim().strip_prefix(NAME)?.strip_prefix('=')
}

/// The session id a request sends (`Cookie: a=1; JSESSIONID=<id>`), over all its `Cookie`
/// headers.
pub(crate) fn sent(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(value_of)
        .map(str::to_string)
}

/// The session id a response's `Set-Cookie` headers set: empty when they expire the cookie.
pub(crate) fn set<'a>(set_cookie: impl IntoIterator<Item = &'a HeaderValue>) -> Option<String> {
    set_cookie
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| value_of(v.split(';').next()?))
        .map(str::to_string)
}

/// The session id a response sets ([`set`] over its `Set-Cookie` headers).
pub(crate) fn set_by(headers: &HeaderMap) -> Option<String> {
    set(headers.get_all(SET_COOKIE))
}

/// The `Cookie` header a client sends to stay in session `id`.
pub(crate) fn request_header(id: &str) -> String {
    format!("{NAME}={id}")
}

/// The `Set-Cookie` header of a new session `id`, as Tomcat writes it. `None` when `id` is not
/// a valid header value.
pub(crate) fn new_session(id: &str) -> Option<HeaderValue> {
    format!("{NAME}={id}; Path=/; HttpOnly").parse().ok()
}

/// The `Set-Cookie` header that expires the session cookie: the lab's Jahia logout sends it so
/// that its balancer drops the session's pin.
pub(crate) fn expired() -> HeaderValue {
    HeaderValue::from_static("JSESSIONID=; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_session_among_other_cookies_and_headers() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("theme=dark"));
        h.append(COOKIE, HeaderValue::from_static("a=1; JSESSIONID=abc; b=2"));
        assert_eq!(sent(&h).as_deref(), Some("abc"));
        // A cookie whose name only starts with the session cookie's is another cookie.
        let mut other = HeaderMap::new();
        other.append(COOKIE, HeaderValue::from_static("JSESSIONIDX=1"));
        assert_eq!(sent(&other), None);
    }

    #[test]
    fn reads_what_a_response_sets_and_expires() {
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("lang=en; Path=/"));
        h.append(SET_COOKIE, new_session("s1").expect("a valid id"));
        assert_eq!(set_by(&h).as_deref(), Some("s1"));
        assert_eq!(set([&expired()]).as_deref(), Some(""));
        assert_eq!(set_by(&HeaderMap::new()), None);
        assert_eq!(request_header("s1"), "JSESSIONID=s1");
        assert!(new_session("bad\nid").is_none());
    }
}
