//! A database that goes away: sign-in and session checks answer 503, the process lives on.

use crate::helpers::{TestDb, assert_refused, session_cookie, spawn_signin_app};

#[tokio::test]
async fn a_lost_database_answers_503_and_the_process_lives_on() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let response = app.login(&app.token_for("ana@example.org")).await;
    let session = session_cookie(&response).expect("cookie").0;
    app.db.drop_now();
    assert_refused(
        app.login(&app.token_for("ana@example.org")).await,
        503,
        "unavailable",
    )
    .await;
    assert_eq!(
        app.get_with_session("/session", &session).await.status(),
        503
    );
    assert_eq!(app.get_with_session("/auth", &session).await.status(), 503);
    let logout = app
        .client
        .post(format!("{}/logout", app.address))
        .header("Cookie", format!("idgate_session={session}"))
        .send()
        .await
        .expect("send");
    assert_eq!(logout.status(), 503);
    assert!(
        session_cookie(&logout).is_some_and(|(v, _)| v.is_empty()),
        "the cookie is still cleared"
    );
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .expect("send");
    assert_eq!(health.status(), 200);
}
