//! The one mapping from everything that can go wrong in a request to an HTTP status and an
//! OpenAI-shaped error body (TGI's `InferError` → status is the model).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::llm_engine::EngineError;
use engine::sampling::SamplingError;

use super::protocol::{ErrorBody, ErrorInfo};

/// `Retry-After` of a request refused because the waiting queue is full: about the time a slot
/// takes to turn over on a small model; clients back off from there.
pub const OVERLOADED_RETRY_AFTER_S: u64 = 1;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub param: Option<String>,
    /// Seconds for a `Retry-After` header (503s a client should retry).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn bad_param(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: Some(param.to_string()),
            retry_after: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: missing or invalid API key",
        )
    }

    /// The OpenAI/vLLM `type` for a status: clients map it to typed exceptions.
    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "BadRequestError",
            StatusCode::UNAUTHORIZED => "AuthenticationError",
            StatusCode::NOT_FOUND => "NotFoundError",
            StatusCode::CONFLICT => "ConflictError",
            StatusCode::PAYLOAD_TOO_LARGE => "RequestTooLargeError",
            StatusCode::UNPROCESSABLE_ENTITY => "UnprocessableEntityError",
            StatusCode::TOO_MANY_REQUESTS => "RateLimitError",
            StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailableError",
            _ => "InternalServerError",
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorInfo {
                message: self.message.clone(),
                kind: self.kind(),
                param: self.param.clone(),
                code: self.status.as_u16(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let mut resp = (self.status, Json(self.body())).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

impl From<SamplingError> for ApiError {
    fn from(e: SamplingError) -> Self {
        ApiError::bad_param(e.param(), e.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::InvalidRequest(s) => s.into(),
            EngineError::EngineDead => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the engine is not running (shutting down or failed)",
            ),
            e @ EngineError::Overloaded { .. } => ApiError {
                retry_after: Some(OVERLOADED_RETRY_AFTER_S),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            },
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_types_follow_openai() {
        let e: ApiError = SamplingError::InvalidParameter {
            param: "temperature",
            msg: "temperature must be non-negative, got -1".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let body = serde_json::to_value(e.body()).unwrap();
        assert_eq!(body["error"]["param"], "temperature");
        assert_eq!(body["error"]["type"], "BadRequestError");
        assert_eq!(body["error"]["code"], 400);
        assert_eq!(
            ApiError::from(EngineError::EngineDead).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let busy = ApiError::from(EngineError::Overloaded {
            waiting: 4,
            limit: 4,
        })
        .into_response();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()["retry-after"], "1");
    }
}
