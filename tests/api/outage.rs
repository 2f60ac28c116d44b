//! A database that goes away and comes back: requests answer 503 meanwhile, the process lives
//! on, and it recovers by itself. The database is reached through a TCP proxy the test can cut.

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{TestDb, assert_refused, session_cookie, spawn_signin_app_with};

/// A TCP proxy to PostgreSQL that can be cut (every connection dropped, new ones refused) and
/// restored.
struct CuttableProxy {
    port: u16,
    up: Arc<Mutex<bool>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl CuttableProxy {
    async fn start(target: String) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let up = Arc::new(Mutex::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, connections2) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*up2.lock().expect("lock") {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                connections2.lock().expect("lock").push(handle);
            }
        });
        CuttableProxy {
            port,
            up,
            connections,
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_recovers_by_itself() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
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
