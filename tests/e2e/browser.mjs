// Drives headless Chromium through idgate's browser sign-in:
// idgate /login → the provider's button → the provider's login form → consent → back to idgate,
// then prints idgate's GET /session answer as JSON on standard output.
//
//   node browser.mjs IDGATE_URL PROVIDER_TITLE LOGIN [SCREENSHOT.png]
//
// With EXPECT_REFUSAL=1 the run ends on idgate's error page instead, and prints its heading,
// what it says of a refused account, and what idgate's 404 and GET /logout pages show.
// With SIGN_OUT=1 (and PROVIDER_URL) it then signs out through idgate and the provider's
// end-session page back to idgate's /signed-out, signs in again, signs out at the provider
// alone, and reports whether idgate's session survived the provider's back-channel logout;
// then signs in once more and out from idgate's sign-out page (GET /logout).
import { chromium } from 'playwright-core';

const [idgate, title, login, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
const page = await browser.newPage();

// Signs in through idgate's sign-in page again, after a sign-out: the provider's login form,
// and its consent page when it asks again.
async function signInAgain() {
  await page.goto(`${idgate}/login`);
  await page.getByRole('link', { name: title }).click();
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  const consent = page.getByRole('button', { name: 'Continue' });
  await Promise.race([page.waitForURL(`${idgate}/`), consent.waitFor()]);
  if (page.url() !== `${idgate}/`) {
    await consent.click();
    await page.waitForURL(`${idgate}/`);
  }
}
try {
  // Generous: the test suite shares two cores with this browser.
  page.setDefaultTimeout(30000);
  await page.goto(`${idgate}/login`);
  await page.getByRole('link', { name: title }).click();
  // The provider's development login form, then its consent page.
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await page.getByRole('button', { name: 'Continue' }).click();
  if (process.env.EXPECT_REFUSAL === '1') {
    const heading = page.getByRole('heading', { level: 1 });
    await heading.waitFor();
    const report = { refused: true, url: page.url(), heading: await heading.innerText() };
    // A refused account: the email the provider asserted, and a way to choose another account.
    const other = page.getByRole('link', { name: 'Sign in with a different account' });
    if (await other.count() > 0) {
      report.email = await page.locator('strong').first().innerText();
      report.differentAccount = await other.getAttribute('href');
      report.incident = await page.locator('.incident').innerText();
    }
    // idgate's other pages for people: an unknown path, and the sign-out page of GET /logout.
    const missing = await page.goto(`${idgate}/no-such-page`);
    report.notFound = {
      status: missing.status(),
      type: missing.headers()['content-type'],
      heading: await page.getByRole('heading', { level: 1 }).innerText(),
    };
    const logout = await page.goto(`${idgate}/logout`);
    report.logoutPage = {
      status: logout.status(),
      heading: await page.getByRole('heading', { level: 1 }).innerText(),
      buttons: await page.getByRole('button', { name: 'Sign out' }).count(),
    };
    console.log(JSON.stringify(report));
    process.exit(0);
  }
  // Back at idgate: the home page names the person.
  await page.waitForURL(`${idgate}/`);
  await page.getByText(login).waitFor();
  if (screenshot) {
    await page.screenshot({ path: screenshot });
  }
  if (process.env.SIGN_OUT === '1') {
    // idgate's sign-out button, then the provider's end-session page, back to idgate.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await page.waitForURL((url) => url.pathname === "/signed-out");
    const signedOut = { url: page.url(), text: await page.locator('body').innerText() };
    const afterRpLogout = (await page.goto(`${idgate}/session`)).status();
    // Signed in again, then signed out at the provider alone: its back-channel logout.
    await signInAgain();
    const beforeBackchannel = (await page.goto(`${idgate}/session`)).status();
    await page.goto(`${process.env.PROVIDER_URL}/session/end`);
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await page.waitForLoadState();
    // The provider has sent its back-channel logout before answering; asked a few times all
    // the same, for the session cache's seconds.
    let afterBackchannel = 0;
    for (let i = 0; i < 10; i += 1) {
      afterBackchannel = (await page.goto(`${idgate}/session`)).status();
      if (afterBackchannel === 401) break;
      await page.waitForTimeout(500);
    }
    // Signed in once more, and signed out from idgate's sign-out page (GET /logout), whose
    // button goes on to the provider's end-session page too.
    await signInAgain();
    await page.goto(`${idgate}/logout`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await page.waitForURL((url) => url.pathname === "/signed-out");
    const fromLogoutPage = { url: page.url(), session: (await page.goto(`${idgate}/session`)).status() };
    console.log(JSON.stringify({ signedOut, afterRpLogout, beforeBackchannel, afterBackchannel, fromLogoutPage }));
    process.exit(0);
  }
  // The browser itself asks who it is, with the cookie idgate set.
  const response = await page.goto(`${idgate}/session`);
  const session = { status: response.status(), body: await response.json() };
  const cookies = await page.context().cookies(idgate);
  console.log(JSON.stringify({ session, cookies: cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite })) }));
} catch (error) {
  // Say where the run stopped, for the test's failure message.
  console.error(`stopped at ${page.url()}:\n${(await page.locator('body').innerText().catch(() => '')).slice(0, 2000)}`);
  throw error;
} finally {
  await browser.close();
}
