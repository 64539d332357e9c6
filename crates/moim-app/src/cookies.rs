//! The three cookies of a session and how they are set.
//!
//! Access and refresh tokens are `HttpOnly` (the page's JavaScript never
//! sees them, so a script injected into the page cannot carry them off),
//! `SameSite=Lax` and `Path=/`. The CSRF cookie is readable by the page,
//! which copies it into the `x-csrf-token` header of every state-changing
//! request (double submit): a page on another site can make the browser
//! send the cookies, but cannot read them to write the header.
//!
//! Over https every cookie is `Secure` and named with the `__Host-`
//! prefix, which the browser accepts only from a secure origin, with
//! `Path=/` and no `Domain`: no sibling subdomain can set or shadow it.
//! Plain http is allowed only on localhost and 127.0.0.1 (browsers treat
//! those as secure contexts anyway); there the prefix and `Secure` are
//! left out, since a browser would refuse them.

use axum_extra::extract::cookie::{Cookie, SameSite};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookiePolicy {
    secure: bool,
}

pub const ACCESS: &str = "moim_access";
pub const REFRESH: &str = "moim_refresh";
pub const CSRF: &str = "moim_csrf";

impl CookiePolicy {
    pub fn new(secure: bool) -> Self {
        Self { secure }
    }

    /// The name a cookie goes by under this policy.
    pub fn name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_string()
        }
    }

    /// A cookie for `value` that lives `max_age` seconds.
    pub fn cookie(&self, base: &str, value: String, max_age: i64) -> Cookie<'static> {
        let mut c = Cookie::new(self.name(base), value);
        c.set_path("/");
        c.set_http_only(base != CSRF);
        c.set_secure(self.secure);
        c.set_same_site(SameSite::Lax);
        c.set_max_age(cookie::time::Duration::seconds(max_age));
        c
    }

    /// The same cookie, expired: the browser deletes it.
    pub fn removal(&self, base: &str) -> Cookie<'static> {
        self.cookie(base, String::new(), 0)
    }
}
