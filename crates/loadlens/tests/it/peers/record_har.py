"""Record a HAR of a short browse of the demo target in headless Chromium, through Playwright.

Usage: record_har.py CHROMIUM BASE_URL HAR_PATH

Playwright (PyPI `playwright`, installed by scripts/test into ~/.cache/loadlens-playwright)
drives the system's Chromium (`executable_path`, so no browser download) and writes the HAR
with `record_har_path` when the context closes. The browse: the home page, its "Products"
link, a product page, then what a page's script would do: log in with a cookie session, add
to the cart (the session cookie goes with it), search, and load a stylesheet (a 404 on the demo
target, which convert leaves out as a static asset). Pauses between the steps become the
scenario's think times.
"""

import sys

from playwright.sync_api import sync_playwright

chromium, base, har_path = sys.argv[1:4]

with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=chromium,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
    context = browser.new_context(record_har_path=har_path, record_har_content="embed")
    page = context.new_page()
    page.goto(base + "/")
    page.wait_for_timeout(300)
    page.click("text=Products")
    page.wait_for_load_state()
    page.wait_for_timeout(300)
    page.goto(base + "/api/products/42")
    page.wait_for_timeout(300)
    page.evaluate(
        """async () => {
            const json = { "Content-Type": "application/json" };
            let r = await fetch("/authenticate", { method: "POST", headers: json,
                body: JSON.stringify({ user: "ada", password: "secret" }) });
            if (r.status !== 200) throw new Error("authenticate: " + r.status);
            await new Promise(done => setTimeout(done, 250));
            r = await fetch("/cart/add", { method: "POST", headers: json,
                body: JSON.stringify({ productId: 42 }) });
            if (r.status !== 200) throw new Error("cart/add: " + r.status);
            await new Promise(done => setTimeout(done, 250));
            r = await fetch("/api/v1/search?q=running%20shoes&page=2&sort=price");
            if (r.status !== 200) throw new Error("search: " + r.status);
            await fetch("/static/site.css");
        }"""
    )
    context.close()
    browser.close()
print("recorded", har_path)
