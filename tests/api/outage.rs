//! A database that goes away and comes back: requests answer 503 meanwhile, the process lives
//! on, and it recovers by itself. The database is reached through a TCP proxy the test can cut.

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{TestDb, assert_refused, session_cookie, spawn_signin_app_with};

/// A TCP proxy to PostgreSQL that can be cut (every connection dropped, new ones refused),
/// frozen (connections stay open and nothing passes: a stalled database) and restored.
struct CuttableProxy {
    port: u16,
    up: Arc<Mutex<bool>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    frozen: tokio::sync::watch::Sender<bool>,
}

/// Copies `from` to `to` while the proxy is not frozen; when it is, holds what it read.
async fn pass(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buffer).await else {
            return;
        };
        if n == 0 || frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

impl CuttableProxy {
    async fn start(target: String) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let up = Arc::new(Mutex::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (frozen, watching) = tokio::sync::watch::channel(false);
        let (up2, connections2) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !*up2.lock().expect("lock") {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let watching = watching.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        tokio::join!(
                            pass(client_read, server_write, watching.clone()),
                            pass(server_read, client_write, watching),
                        );
                    }
                });
                connections2.lock().expect("lock").push(handle);
            }
        });
        CuttableProxy {
            port,
            up,
            connections,
            frozen,
        }
    }

    fn cut(&self) {
        *self.up.lock().expect("lock") = false;
        for connection in self.connections.lock().expect("lock").drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        *self.up.lock().expect("lock") = true;
    }

    fn freeze(&self, frozen: bool) {
        let _ = self.frozen.send(frozen);
    }
}

/// The app on PostgreSQL through a proxy, with Ana signed in; the proxy and her session.
async fn app_behind_a_proxy(db: TestDb) -> (crate::helpers::SignInApp, CuttableProxy, String) {
    let mut url = url::Url::parse(&db.url).expect("url");
    let target = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    );
    let proxy = CuttableProxy::start(target).await;
    url.set_port(Some(proxy.port)).expect("port");
    let proxied = url.to_string();
    let app = spawn_signin_app_with(db, |s| s.database_url = proxied).await;
    app.add_member("ana@example.org");
    let response = app.login(&app.token_for("ana@example.org")).await;
    let session = session_cookie(&response).expect("cookie").0;
    assert_eq!(app.get_with_session("/auth", &session).await.status(), 200);
    (app, proxy, session)
}

/// A database that stalls (connections open, nothing answered) holds no request for longer
/// than the database wait: they answer 503, and the service recovers when it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_database_answers_503_within_the_wait_and_recovers() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let (app, proxy, session) = app_behind_a_proxy(db).await;
    proxy.freeze(true);
    app.clock.advance(2);
    // A client that would wait 30 s: the answer comes long before (the wait is 5 s).
    let within = std::time::Duration::from_secs(30);
    let login = tokio::time::timeout(within, app.login(&app.token_for("ana@example.org")))
        .await
        .expect("answered while the database stalls");
    assert_refused(login, 503, "unavailable").await;
    let auth = tokio::time::timeout(within, app.get_with_session("/auth", &session))
        .await
        .expect("answered while the database stalls");
    assert_eq!(auth.status(), 503);
    proxy.freeze(false);
    proxy.cut();
    proxy.restore();
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200,
        "recovered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_recovers_by_itself() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let (app, proxy, session) = app_behind_a_proxy(db).await;

    proxy.cut();
    // Past the session cache's 2 seconds: the next checks need the database.
    app.clock.advance(2);
    assert_refused(
        app.login(&app.token_for("ana@example.org")).await,
        503,
        "unavailable",
    )
    .await;
    assert_eq!(app.get_with_session("/auth", &session).await.status(), 503);
    let session_answer = app.get_with_session("/session", &session).await;
    assert_eq!(session_answer.status(), 503);
    let body: serde_json::Value = session_answer.json().await.expect("json");
    assert_eq!(body["error"]["id"], "unavailable");
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200, "the process lives on");

    proxy.restore();
    assert_eq!(
        app.get_with_session("/auth", &session).await.status(),
        200,
        "recovered by itself"
    );
    assert_eq!(
        app.login(&app.token_for("ana@example.org")).await.status(),
        200
    );
}
