// The emulator's chat page: plays customers, polls the transcript, renders the OA's replies.
let current = null;
let lastCount = -1;

async function api(path, body) {
  const options = body ? {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)} : {};
  const response = await fetch("/_emulator/api/" + path, options);
  return response.json();
}

function act(action, extra = {}) {
  if (!current) return Promise.resolve();
  return api("act", {user_id: current, action, ...extra}).then(refresh);
}

function bubble(message) {
  const div = document.createElement("div");
  div.className = "bubble " + message.from;
  div.dataset.kind = message.kind;
  if (message.text) div.appendChild(document.createTextNode(message.text));
  if (message.kind === "image") {
    const img = document.createElement("img");
    img.src = message.image;
    img.alt = "Thẻ thành viên";
    div.appendChild(img);
  }
  if (message.kind === "request_user_info") {
    const title = document.createElement("strong");
    title.textContent = message.title;
    div.appendChild(title);
    div.appendChild(document.createTextNode("\n" + message.subtitle));
    const share = document.createElement("button");
    share.className = "share";
    share.textContent = "Chia sẻ thông tin";
    share.onclick = () => act("share_info");
    div.appendChild(share);
  }
  if (message.buttons && message.buttons.length) {
    const box = document.createElement("div");
    box.className = "buttons";
    for (const b of message.buttons) {
      const button = document.createElement("button");
      button.textContent = b.title;
      button.onclick = () => act("text", {text: b.payload});  // oa.query.show sends its payload as text
      box.appendChild(button);
    }
    div.appendChild(box);
  }
  return div;
}

async function refresh() {
  const data = await api("state?user=" + encodeURIComponent(current || ""));
  const list = document.getElementById("customers");
  list.innerHTML = "";
  for (const c of data.customers) {
    const li = document.createElement("li");
    li.textContent = c.name + (c.followed ? " ✓" : "") + (c.followed && !c.in_window ? " (quá 7 ngày)" : "");
    li.dataset.userId = c.user_id;
    if (c.user_id === current) li.className = "active";
    li.onclick = () => { current = c.user_id; lastCount = -1; refresh(); };
    list.appendChild(li);
  }
  if (!current && data.customers.length) { current = data.customers[0].user_id; return refresh(); }
  const who = data.customers.find(c => c.user_id === current);
  document.getElementById("who").textContent = who ? who.name + " — " + who.phone : "Chọn một khách";
  document.getElementById("refreshes").textContent = "Số lần làm mới token: " + data.refreshes;
  if (data.messages.some(m => m.msg_id && !m.seen)) {
    // The customer's phone shows the OA's new messages: Zalo sends the OA its delivery and seen receipts.
    api("act", {user_id: current, action: "seen"});
  }
  if (data.messages.length !== lastCount) {
    const box = document.getElementById("messages");
    box.innerHTML = "";
    data.messages.forEach(m => box.appendChild(bubble(m)));
    box.scrollTop = box.scrollHeight;
    lastCount = data.messages.length;
  }
}

document.getElementById("composer").onsubmit = (e) => {
  e.preventDefault();
  const input = document.getElementById("text");
  const text = input.value.trim();
  input.value = "";
  if (text) act("text", {text});
};
document.getElementById("follow").onclick = () => act("follow");
document.getElementById("unfollow").onclick = () => act("unfollow");
document.getElementById("chatnow").onclick = () => act("chatnow");
document.getElementById("new-customer").onsubmit = async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  const created = await api("customers", {name: form.get("name"), phone: form.get("phone")});
  current = created.user_id; lastCount = -1; e.target.reset(); refresh();
};
document.querySelectorAll("[data-fail]").forEach(b => b.onclick = () => api("fail", {code: Number(b.dataset.fail), path: "message/cs"}).then(refresh));
document.getElementById("expire-token").onclick = () => api("expire-token", {}).then(refresh);
document.getElementById("silence").onclick = () => current && api("silence", {user_id: current}).then(refresh);
refresh();
setInterval(refresh, 1000);
