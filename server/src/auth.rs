//! Who is calling (docs/http.md, "Who is calling"): a bearer token from
//! `joblog token create`, checked with `Engine::authenticate` on every
//! request.
//!
//! STAND-IN written on the t15-odata branch so the Dataverse face builds
//! and is tested before the lead's `server/src/auth.rs` (cookie sessions,
//! CSRF) reaches main: same `Caller` shape; at the merge, take main's file.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::{blocking, ApiError, AppState};

/// The acting user of a request, and their session.
pub struct Caller {
    /// The token's user.
    pub user: String,
    /// A session acting as that user.
    pub session: joblog::Session,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string())
            .ok_or_else(ApiError::unauthenticated)?;
        let engine = state.engine.clone();
        blocking(move || {
            let user = engine.authenticate(&token).map_err(|_| ApiError::unauthenticated())?;
            let session = engine.session(&user).map_err(|_| ApiError::unauthenticated())?;
            Ok(Caller { user, session })
        })
        .await
    }
}
