// The Trade review page: reads /rtc-review/api/review (the server resolves the range on the
// trader's clock) and draws it with ECharts. No data is computed here beyond formatting.
"use strict";

(function () {
  const base = window.location.pathname.replace(/\/?$/, "/");
  const $ = (id) => document.getElementById(id);
  const charts = {};
  let timer = null;
  let orders = [];
  let sort = { key: "ts_ms", type: "number", direction: -1 };

  const utc = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 19);
  const usd = (value) =>
    value === null || value === undefined ? "–" :
    Number(value).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const text = (value) => (value === null || value === undefined ? "–" : String(value));

  function chart(id) {
    if (!charts[id]) charts[id] = echarts.init($(id), null, { renderer: "canvas" });
    return charts[id];
  }

  function timeAxis(range) {
    return { type: "time", min: range.start_ms, max: range.end_ms, axisLabel: { hideOverlap: true } };
  }

  function baseOption(range, extra) {
    return Object.assign({
      animation: false,
      grid: { left: 64, right: 56, top: 34, bottom: 28 },
      tooltip: { trigger: "axis" },
      legend: { top: 0, left: 64, right: 56, type: "scroll" },
      dataZoom: [{ type: "inside", filterMode: "none" }],
      xAxis: timeAxis(range),
    }, extra);
  }

  function drawPnl(data) {
    const points = data.pnl.length ? [[data.range.start_ms, 0], ...data.pnl] : [];
    chart("chart-pnl").setOption(baseOption(data.range, {
      yAxis: { type: "value", scale: true },
      series: [{ name: "cumulative P&L", type: "line", step: "end", showSymbol: false, data: points }],
      graphic: data.pnl.length ? [] : [{ type: "text", left: "center", top: "middle",
        style: { text: "no closed round trip in this range", fill: "#718096" } }],
    }), true);
  }

  function drawPrice(data) {
    const series = [{ name: "mid price", type: "line", showSymbol: false, data: data.prices,
      lineStyle: { width: 1.5 } }];
    for (const line of data.forecasts) {
      series.push({ name: `forecast ${line.version}`, type: "line", showSymbol: false,
        lineStyle: { type: "dashed", width: 1.2 }, data: line.points.map((p) => [p[0], p[1]]) });
    }
    // Large mode draws many markers as one path (1,000 orders: 0.13 s instead of 1.25 s); it
    // ignores symbolRotate, hence a downward triangle drawn as a path for the sells.
    const markers = { type: "scatter", symbolSize: 10, large: true, largeThreshold: 200 };
    series.push({ ...markers, name: "buy", symbol: "triangle",
      itemStyle: { color: "#2f855a" }, data: data.buys.map((m) => [m[0], m[1], m[2]]) });
    series.push({ ...markers, name: "sell", symbol: "path://M0,0L10,0L5,10Z",
      itemStyle: { color: "#c53030" }, data: data.sells.map((m) => [m[0], m[1], m[2]]) });
    chart("chart-price").setOption(baseOption(data.range, {
      yAxis: { type: "value", scale: true }, series }), true);
  }

  function drawLiquidity(data) {
    const [low, high] = data.ratio_band;
    chart("chart-liquidity").setOption(baseOption(data.range, {
      yAxis: [{ type: "value", scale: true },
              { type: "value", min: -1, max: 1 }],
      series: [
        { name: "liquidity ratio", type: "line", showSymbol: false, data: data.ratios,
          markArea: { silent: true, itemStyle: { color: "rgba(49,130,206,0.12)" },
                      label: { position: "insideBottomRight", color: "#4a5568" },
                      data: [[{ yAxis: low, name: `buy band (${low}, ${high})` }, { yAxis: high }]] } },
        { name: "depth imbalance", type: "line", yAxisIndex: 1, showSymbol: false,
          lineStyle: { width: 1 }, data: data.imbalance },
      ],
    }), true);
  }

  function drawEquity(data) {
    chart("chart-equity").setOption(baseOption(data.range, {
      yAxis: { type: "value", scale: true },
      series: [{ name: "equity", type: "line", showSymbol: false, data: data.equity }],
    }), true);
  }

  function fillRows(tbody, rows) {
    tbody.replaceChildren(...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const cell of cells) {
        const td = document.createElement("td");
        if (cell && typeof cell === "object") {
          td.textContent = cell.text;
          if (cell.className) td.className = cell.className;
        } else {
          td.textContent = text(cell);
        }
        tr.appendChild(td);
      }
      return tr;
    }));
  }

  function drawOrders() {
    const { key, type, direction } = sort;
    const value = (row) => (type === "number" ? Number(row[key] ?? NaN) : String(row[key] ?? ""));
    const sorted = [...orders].sort((a, b) => {
      const x = value(a), y = value(b);
      return (x < y ? -1 : x > y ? 1 : 0) * direction;
    });
    fillRows($("orders").querySelector("tbody"), sorted.map((row) => [
      utc(row.ts_ms), row.side, row.price, row.quantity, row.fee_usd, row.forecast_version,
      row.client_order_id, row.status]));
    for (const th of $("orders").querySelectorAll("th[data-key]")) {
      th.setAttribute("aria-sort", th.dataset.key === key ? (direction > 0 ? "ascending" : "descending") : "none");
    }
  }

  function drawSummary(data) {
    const s = data.summary;
    $("fills-count").textContent = s.trades;
    $("fills-sides").textContent = `${s.buys} buys, ${s.sells} sells`;
    $("orders-count").textContent = s.orders;
    $("round-trips").textContent = s.round_trips;
    $("hit-rate").textContent = s.hit_rate === null ? "hit rate n/a" : `hit rate ${(s.hit_rate * 100).toFixed(1)} %`;
    $("pnl-value").textContent = usd(s.realised_pnl_usd);
    $("fees").textContent = `fees ${usd(s.fees_paid_usd)}`;
    $("verdict").textContent = `${s.verdict} Forecast: ${s.forecast.note}.`;
    document.body.dataset.startMs = data.range.start_ms;
    document.body.dataset.endMs = data.range.end_ms;
  }

  function drawPlatform(data) {
    const f = data.forecast;
    $("forecast-version").textContent = f.version
      ? `Current version ${f.version} (${text(f.status)}; gate: ${text(f.gate_rule)})` : `No current forecast: ${f.note}`;
    const labels = { hit_rate: "hit rate", return_pct: "return after fees (%)", pnl_usd: "P&L after fees (USD)",
      buy_and_hold_return_pct: "buy-and-hold return (%)", random_return_pct_mean: "random baseline return, mean (%)",
      max_drawdown_pct: "max drawdown (%)", trades: "trades", minutes: "holdout minutes", taker_fee_pct: "taker fee (%)" };
    fillRows($("forecast-metrics").querySelector("tbody"),
      Object.entries(f.metrics || {}).map(([name, value]) => [labels[name] || name,
        name === "pnl_usd" ? usd(value) : typeof value === "number" ? Number(value.toFixed(6)) : value]));
    $("forecast-note").textContent = f.version ? f.note : "";
    fillRows($("health").querySelector("tbody"), data.health.map((h) => [h.service,
      { text: h.state, className: `state-${h.state}` }, h.heartbeat, h.lag, h.reason]));
    fillRows($("restarts").querySelector("tbody"), data.restarts.length
      ? data.restarts.map((r) => [utc(r.ts_ms), r.service, r.reason, r.pid])
      : [["–", "no restart recorded", "", ""]]);
  }

  function params() {
    const form = new FormData($("controls"));
    const query = new URLSearchParams();
    for (const name of ["since", "until", "symbol", "mode"]) {
      const value = String(form.get(name) || "").trim();
      if (value) query.set(name, value);
    }
    return query;
  }

  function schedule(seconds) {
    if (timer) clearInterval(timer);
    timer = seconds > 0 ? setInterval(load, seconds * 1000) : null;
  }

  async function load() {
    const query = params();
    document.body.dataset.state = "loading";
    let response;
    try {
      response = await fetch(`${base}api/review?${query}`, { credentials: "same-origin" });
    } catch (error) {
      return fail(`the api-server does not answer: ${error}`);
    }
    if (response.status === 401 || response.status === 403) {
      return fail("not logged in to Airflow (or no permission): log in again and reload");
    }
    const body = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
    if (!response.ok) return fail(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
    $("error").hidden = true;
    render(body);
    history.replaceState(null, "", `${base}?${query}&refresh=${$("refresh").value}`);
  }

  function fail(message) {
    $("error").textContent = message;
    $("error").hidden = false;
    document.body.dataset.state = "error";
  }

  function render(data) {
    const symbols = $("symbol");
    if (symbols.options.length !== data.symbols.length) {
      symbols.replaceChildren(...data.symbols.map((s) => new Option(s, s)));
    }
    symbols.value = data.symbol;
    drawSummary(data);
    drawPnl(data);
    drawPrice(data);
    drawLiquidity(data);
    drawEquity(data);
    orders = data.orders;
    drawOrders();
    drawPlatform(data);
    $("status").textContent = `${utc(data.range.start_ms)} .. ${utc(data.range.end_ms)} UTC · ` +
      `${data.range.clock} · updated ${new Date().toISOString().slice(11, 19)} UTC` +
      (data.range.live ? "" : " · a range in the past: refresh is off unless chosen");
    document.body.dataset.state = "loaded";
  }

  function start() {
    const query = new URLSearchParams(window.location.search);
    for (const name of ["since", "until", "mode"]) if (query.get(name)) $(name).value = query.get(name);
    if (query.get("symbol")) $("symbol").replaceChildren(new Option(query.get("symbol"), query.get("symbol")));
    const live = ($("until").value.trim().toLowerCase() || "now") === "now";
    $("refresh").value = query.get("refresh") ?? (live ? "15" : "0");
    $("controls").addEventListener("submit", (event) => {
      event.preventDefault();
      if ($("until").value.trim().toLowerCase() !== "now" && !query.get("refresh")) $("refresh").value = "0";
      schedule(Number($("refresh").value));
      load();
    });
    $("refresh").addEventListener("change", () => schedule(Number($("refresh").value)));
    $("symbol").addEventListener("change", load);
    $("mode").addEventListener("change", load);
    for (const th of $("orders").querySelectorAll("th[data-key]")) {
      th.addEventListener("click", () => {
        const same = sort.key === th.dataset.key;
        sort = { key: th.dataset.key, type: th.dataset.type || "text", direction: same ? -sort.direction : 1 };
        drawOrders();
      });
    }
    window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
    schedule(Number($("refresh").value));
    load();
  }

  start();
})();
