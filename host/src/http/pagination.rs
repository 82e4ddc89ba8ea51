//! Cursor pagination for lists ordered by (time, id) descending: `?limit=&cursor=` in,
//! `{data, nextCursor}` out. A cursor is opaque to clients.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;
use crate::store::PageQuery;

pub const DEFAULT_LIMIT: i64 = 25;
pub const MAX_LIMIT: i64 = 100;

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageParams {
    /// 1 to 100; 25 by default.
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl PageParams {
    pub fn to_query(&self) -> Result<PageQuery, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_query", format!("limit: 1 to {MAX_LIMIT}")));
        }
        let after = self.cursor.as_deref().map(decode).transpose()?;
        Ok(PageQuery { after, limit })
    }
}

/// A page of rows fetched with `limit`; the cursor points after the last row when the page is full.
pub fn page<T>(rows: Vec<T>, limit: i64, key: impl Fn(&T) -> (DateTime<Utc>, Uuid)) -> Page<T> {
    let next_cursor = (rows.len() as i64 == limit).then(|| rows.last().map(|row| encode(key(row)))).flatten();
    Page { data: rows, next_cursor }
}

fn encode((at, id): (DateTime<Utc>, Uuid)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)))
}

fn decode(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid =
        || ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_cursor", "cursor: not a cursor this server issued");
    let text = URL_SAFE_NO_PAD.decode(cursor).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(invalid)?;
    let (at, id) = text.split_once('|').ok_or_else(invalid)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| invalid())?.with_timezone(&Utc);
    Ok((at, id.parse().map_err(|_| invalid())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let key = (Utc::now(), Uuid::now_v7());
        assert_eq!(decode(&encode(key)).ok(), Some(key));
        for bad in ["", "xyz", &URL_SAFE_NO_PAD.encode("2020-01-01T00:00:00Z|nope")] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
