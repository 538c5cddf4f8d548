//! object_store's HTTP client, made of the hyper client Berth already builds with:
//! HTTP/1.1, plain or TLS (`berth_http::tls`: rustls, the system's CA certificates).

use http_body_util::BodyExt;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use object_store::client::{
    HttpClient, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
    HttpResponseBody, HttpService,
};
use object_store::ClientOptions;

type Hyper = Client<hyper_rustls::HttpsConnector<HttpConnector>, HttpRequestBody>;

#[derive(Debug)]
pub struct Connector;

impl object_store::client::HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let https = berth_http::tls::https(HttpConnector::new(), None).map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            }
        })?;
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(HttpClient::new(Service(client)))
    }
}

struct Service(Hyper);

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("hyper client")
    }
}

#[async_trait::async_trait]
impl HttpService for Service {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let resp = self.0.request(req).await.map_err(|e| {
            let kind = if e.is_connect() {
                HttpErrorKind::Connect
            } else {
                HttpErrorKind::Request
            };
            HttpError::new(kind, e)
        })?;
        let (parts, body) = resp.into_parts();
        let body = body.map_err(|e| HttpError::new(HttpErrorKind::Decode, e));
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}
