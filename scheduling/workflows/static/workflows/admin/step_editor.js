/* The workflow step editor: one card per step, with the fields its step type
 * declares (scheduling.steps.StepField), kept in step with the JSON textarea
 * that the form posts. As you type, the steps are checked by the admin's
 * validate-steps view (the services' own validation) and each error is shown
 * under its step and field. Plain JavaScript, no library. */
(function () {
  "use strict";

  var STEP_KEY = /^steps\[(\d+)\](?:\.(.+))?$/;
  var PREFIX = /^Step \d+(?: \('[^']*'\))?: /;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === undefined || value === null || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function sentence(text) {
    text = String(text).replace(PREFIX, "");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function csrfToken(form) {
    var input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  /* -- values: what a field shows <-> what the step holds ------------------ */
  function toText(field, value) {
    if (value === undefined || value === null) return "";
    switch (field.kind) {
      case "list": return Array.isArray(value) ? value.join("\n") : JSON.stringify(value);
      case "mapping":
        if (value && typeof value === "object" && !Array.isArray(value)) {
          return Object.keys(value).map(function (k) { return k + ": " + value[k]; }).join("\n");
        }
        return JSON.stringify(value);
      case "json": return JSON.stringify(value, null, 2);
      default: return typeof value === "string" ? value : String(value);
    }
  }

  /* Returns {value, omit, problem}: what to store for the field's text. */
  function fromText(field, text) {
    var trimmed = text.trim();
    if (trimmed === "" && field.kind !== "boolean") return {omit: true};
    switch (field.kind) {
      case "number":
      case "integer":
        var number = Number(trimmed);
        return isFinite(number) && /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(trimmed)
          ? {value: number} : {value: trimmed};  // the check says what is wrong
      case "list":
        return {value: text.split("\n").map(function (s) { return s.trim(); }).filter(Boolean)};
      case "mapping":
        var result = {}, problem = null;
        text.split("\n").forEach(function (line, index) {
          if (!line.trim()) return;
          var at = line.indexOf(":");
          if (at < 1) { problem = problem || "Line " + (index + 1) + ": write “name: value”."; return; }
          result[line.slice(0, at).trim()] = line.slice(at + 1).trim();
        });
        return problem ? {problem: problem, value: result} : {value: result};
      case "json":
        try { return {value: JSON.parse(text)}; }
        catch (error) { return {problem: "Not valid JSON: " + error.message, value: text}; }
      default:
        return {value: text};
    }
  }

  function Editor(root) {
    this.root = root;
    this.textarea = document.getElementById(root.getAttribute("data-for"));
    this.form = this.textarea.form;
    this.spec = JSON.parse(document.getElementById(root.getAttribute("data-spec")).textContent);
    this.types = {};
    this.spec.types.forEach(function (type) { this.types[type.type] = type; }, this);
    this.list = root.querySelector(".wf-steps");
    this.status = root.querySelector(".wf-status");
    this.details = root.querySelector(".wf-json");
    this.localProblems = {};  // "index.field" -> message found here (bad JSON, a mapping line)
    this.sequence = 0;
    this.timer = null;
    this.steps = this.parse(this.textarea.value);
    this.details.open = false;  // open for a page without JavaScript, where it is the editor
    if (this.steps === null) {  // not a list: the JSON view is the editor until it is
      this.steps = [];
      this.details.open = true;
      this.setStatus("bad", "The steps are not a JSON list: fix them in the JSON below.");
    }
    root.querySelector(".wf-add").hidden = false;
    root.classList.add("wf-ready");
    this.bind();
    this.render();
    if (this.steps.length) this.check();
    else if (this.status.textContent === "") this.setStatus("", "No steps yet: add the first one below.");
  }

  Editor.prototype.parse = function (text) {
    if (!text.trim()) return [];
    try {
      var value = JSON.parse(text);
      if (value === null) return [];  // a new workflow's empty field
      return Array.isArray(value) ? value : null;
    } catch (error) { return null; }
  };

  Editor.prototype.bind = function () {
    var self = this;
    this.root.querySelector(".wf-add-button").addEventListener("click", function () {
      self.add(self.root.querySelector(".wf-add-type").value);
    });
    this.textarea.addEventListener("input", function () {
      var steps = self.parse(self.textarea.value);
      if (steps === null) {
        self.setStatus("bad", "The JSON below is not a list of steps yet; the cards show the last valid one.");
        return;
      }
      self.steps = steps;
      self.localProblems = {};
      self.localText = {};
      self.render();
      self.schedule();
    });
    ["id_secrets_set", "id_owner"].forEach(function (id) {
      var input = document.getElementById(id);
      if (input) input.addEventListener("change", function () { self.schedule(); });
    });
    Array.prototype.forEach.call(document.querySelectorAll("input[name=secrets_remove]"), function (box) {
      box.addEventListener("change", function () { self.schedule(); });
    });
  };

  Editor.prototype.sync = function () {
    this.textarea.value = JSON.stringify(this.steps, null, 2);
  };

  Editor.prototype.uniqueName = function () {
    var taken = {};
    this.steps.forEach(function (step) { taken[step.name] = true; });
    for (var n = this.steps.length + 1; ; n++) if (!taken["step" + n]) return "step" + n;
  };

  Editor.prototype.add = function (typeName) {
    this.steps.push({name: this.uniqueName(), type: typeName});
    this.changed();
    var cards = this.list.children;
    var first = cards[cards.length - 1].querySelector(".wf-type-fields input, .wf-type-fields textarea, .wf-type-fields select");
    if (first) first.focus();
  };

  Editor.prototype.move = function (index, delta) {
    var target = index + delta;
    if (target < 0 || target >= this.steps.length) return;
    var step = this.steps.splice(index, 1)[0];
    this.steps.splice(target, 0, step);
    this.localProblems = {};
    this.localText = {};
    this.changed();
    var button = this.list.children[target].querySelector(delta < 0 ? ".wf-up" : ".wf-down");
    if (button && !button.disabled) button.focus();
  };

  Editor.prototype.remove = function (index) {
    this.steps.splice(index, 1);
    this.localProblems = {};
    this.localText = {};
    this.changed();
  };

  Editor.prototype.changed = function () {
    this.sync();
    this.render();
    this.schedule();
  };

  Editor.prototype.schedule = function () {
    var self = this;
    clearTimeout(this.timer);
    this.setStatus("busy", "Checking…");
    this.timer = setTimeout(function () { self.check(); }, 300);
  };

  Editor.prototype.setStatus = function (kind, text) {
    this.status.className = "wf-status" + (kind ? " wf-status-" + kind : "");
    this.status.textContent = text;
  };

  /* -- drawing --------------------------------------------------------------- */
  Editor.prototype.render = function () {
    var self = this;
    this.list.textContent = "";
    this.steps.forEach(function (step, index) { self.list.appendChild(self.card(step, index)); });
    this.list.hidden = this.steps.length === 0;
  };

  Editor.prototype.card = function (step, index) {
    var self = this;
    var isObject = step && typeof step === "object" && !Array.isArray(step);
    var type = isObject ? this.types[step.type] : null;
    var count = this.steps.length;
    var title = el("span", {className: "wf-card-title"}, [
      el("span", {className: "wf-card-number", text: String(index + 1)}),
      el("strong", {text: isObject && typeof step.name === "string" ? step.name : "step" + (index + 1)}),
      el("span", {className: "wf-card-type", text: type ? type.label : (isObject ? "Unknown type “" + step.type + "”" : "Not a step object")}),
    ]);
    var tools = el("span", {className: "wf-card-tools"}, [
      el("button", {type: "button", className: "wf-icon wf-up", title: "Move up", "aria-label": "Move step " + (index + 1) + " up", disabled: index === 0, text: "↑"}),
      el("button", {type: "button", className: "wf-icon wf-down", title: "Move down", "aria-label": "Move step " + (index + 1) + " down", disabled: index === count - 1, text: "↓"}),
      el("button", {type: "button", className: "wf-icon wf-remove", title: "Remove this step", "aria-label": "Remove step " + (index + 1), text: "✕"}),
    ]);
    tools.querySelector(".wf-up").addEventListener("click", function () { self.move(index, -1); });
    tools.querySelector(".wf-down").addEventListener("click", function () { self.move(index, 1); });
    tools.querySelector(".wf-remove").addEventListener("click", function () { self.remove(index); });
    var card = el("li", {className: "wf-card", "data-index": String(index)}, [
      el("div", {className: "wf-card-head"}, [title, tools]),
      el("ul", {className: "wf-card-errors errorlist", hidden: true}),
    ]);
    if (!isObject) return card;

    var common = {};
    this.spec.common.forEach(function (field) { common[field.name] = field; });
    var head = el("div", {className: "wf-row wf-row-main"});
    head.appendChild(this.field(step, index, common.name));
    head.appendChild(this.typePicker(step, index));
    card.appendChild(head);
    if (type && type.description) card.appendChild(el("p", {className: "wf-type-help", text: type.description}));

    var fields = el("div", {className: "wf-type-fields"});
    (type ? type.fields : []).forEach(function (field) { fields.appendChild(self.field(step, index, field)); });
    card.appendChild(fields);

    var more = el("div", {className: "wf-row wf-row-more"});
    ["timeout_seconds", "retries", "retry_delay_seconds", "continue_on_failure"].forEach(function (name) {
      var spec = common[name];
      if (name === "timeout_seconds" && type && type.default_timeout_seconds) {  // the type's own default
        spec = Object.assign({}, spec, {placeholder: "Default: " + type.default_timeout_seconds});
      }
      more.appendChild(self.field(step, index, spec));
    });
    card.appendChild(more);
    return card;
  };

  Editor.prototype.typePicker = function (step, index) {
    var self = this;
    var id = this.textarea.id + "-" + index + "-type";
    var select = el("select", {id: id, "data-field": "type"});
    var known = false;
    this.spec.types.forEach(function (type) {
      var option = el("option", {value: type.type, text: type.label});
      if (type.type === step.type) { option.selected = true; known = true; }
      select.appendChild(option);
    });
    if (!known) {
      var unknown = el("option", {value: String(step.type || ""), text: step.type ? "“" + step.type + "” (unknown)" : "Choose a type"});
      unknown.selected = true;
      select.insertBefore(unknown, select.firstChild);
    }
    select.addEventListener("change", function () {
      var type = self.types[select.value];
      var keep = {};
      var own = {};
      if (type) type.fields.forEach(function (field) { own[field.name] = true; });
      Object.keys(step).forEach(function (key) {  // the common fields, and fields the new type has too
        if (self.spec.common.some(function (f) { return f.name === key; }) || own[key]) keep[key] = step[key];
      });
      keep.type = select.value;
      self.steps[index] = keep;
      self.changed();
    });
    return el("div", {className: "wf-field wf-field-type", "data-field": "type"}, [
      el("label", {for: id, text: "Type"}), select,
      el("ul", {className: "wf-field-errors errorlist", hidden: true}),
    ]);
  };

  Editor.prototype.field = function (step, index, field) {
    var self = this;
    var id = this.textarea.id + "-" + index + "-" + field.name;
    var value = step[field.name];
    var input;
    var multiline = field.kind === "long_text" || field.kind === "list" || field.kind === "mapping" || field.kind === "json";
    if (field.kind === "boolean") {
      input = el("input", {type: "checkbox", id: id});
      input.checked = value === true;
    } else if (field.kind === "choice") {
      input = el("select", {id: id});
      if (!field.required) input.appendChild(el("option", {value: "", text: field.default !== null ? "Default (" + field.default + ")" : "—"}));
      field.choices.forEach(function (choice) { input.appendChild(el("option", {value: choice, text: choice})); });
      input.value = value === undefined || value === null ? "" : String(value);
    } else if (multiline) {
      var text = this.localText && this.localText[index + "." + field.name];
      input = el("textarea", {id: id, rows: field.kind === "long_text" ? 2 : 3, spellcheck: "false"});
      input.value = text !== undefined ? text : toText(field, value);
    } else {
      input = el("input", {type: "text", id: id, autocomplete: "off", spellcheck: "false",
                           inputmode: field.kind === "number" ? "decimal" : field.kind === "integer" ? "numeric" : field.kind === "url" ? "url" : null});
      input.value = toText(field, value);
      if (field.suggestions && field.suggestions.length) {
        var listId = id + "-suggestions";
        input.setAttribute("list", listId);
        var datalist = el("datalist", {id: listId});
        field.suggestions.forEach(function (s) { datalist.appendChild(el("option", {value: s})); });
        input._datalist = datalist;
      }
    }
    var placeholder = field.placeholder || (field.default !== null && field.default !== undefined && field.kind !== "boolean" && field.kind !== "choice"
      ? "Default: " + (typeof field.default === "object" ? JSON.stringify(field.default) : field.default) : "");
    if (placeholder && input.tagName !== "SELECT" && input.type !== "checkbox") input.setAttribute("placeholder", placeholder);
    input.setAttribute("data-field", field.name);
    if (field.required) input.setAttribute("aria-required", "true");

    var update = function () {
      var key = index + "." + field.name;
      var step = self.steps[index];
      if (field.kind === "boolean") {
        if (input.checked) step[field.name] = true; else delete step[field.name];
      } else {
        var parsed = fromText(field, input.value);
        if (parsed.omit) delete step[field.name];
        else step[field.name] = parsed.value;
        if (parsed.problem) self.localProblems[key] = parsed.problem; else delete self.localProblems[key];
        self.localText = self.localText || {};
        if (multiline) self.localText[key] = input.value;
      }
      if (field.name === "name") {
        var title = input.closest(".wf-card").querySelector(".wf-card-title strong");
        title.textContent = input.value || "step" + (index + 1);
      }
      self.sync();
      self.schedule();
    };
    input.addEventListener(field.kind === "boolean" || field.kind === "choice" ? "change" : "input", update);

    var label = el("label", {for: id, text: field.label});
    if (field.required) label.className = "required";
    var wrap = el("div", {className: "wf-field wf-field-" + field.kind, "data-field": field.name});
    if (field.kind === "boolean") {
      wrap.appendChild(el("span", {className: "wf-check"}, [input, label]));
    } else {
      wrap.appendChild(label);
      wrap.appendChild(input);
      if (input._datalist) wrap.appendChild(input._datalist);
    }
    if (field.help) wrap.appendChild(el("div", {className: "wf-help", text: field.help}));
    wrap.appendChild(el("ul", {className: "wf-field-errors errorlist", hidden: true}));
    return wrap;
  };

  /* -- checking -------------------------------------------------------------- */
  Editor.prototype.check = function () {
    var self = this;
    var sequence = ++this.sequence;
    var secretsBox = document.getElementById("id_secrets_set");
    var owner = document.getElementById("id_owner");
    var body = {
      steps: this.steps,
      workflow: this.textarea.getAttribute("data-workflow") || "",
      owner: owner ? owner.value : "",
      secret_names: secretsBox ? secretsBox.value.split("\n").map(function (line) {
        return line.split("=")[0].trim();
      }).filter(Boolean) : [],
      removed_secrets: Array.prototype.map.call(
        document.querySelectorAll("input[name=secrets_remove]:checked"), function (box) { return box.value; }),
    };
    fetch(this.spec.validate_url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken(this.form)},
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().then(function (data) { return {ok: response.ok, data: data}; });
    }).then(function (answer) {
      if (sequence !== self.sequence) return;  // a newer check is on its way
      if (!answer.ok) { self.setStatus("bad", answer.data.detail || "The steps could not be checked."); return; }
      self.show(answer.data.errors || {});
    }).catch(function () {
      if (sequence === self.sequence) self.setStatus("bad", "The steps could not be checked (is the server up?). Saving checks them again.");
    });
  };

  Editor.prototype.show = function (errors) {
    var self = this;
    Array.prototype.forEach.call(this.root.querySelectorAll(".wf-field-errors, .wf-card-errors"), function (list) {
      list.textContent = ""; list.hidden = true;
    });
    Array.prototype.forEach.call(this.root.querySelectorAll(".wf-invalid"), function (node) {
      node.classList.remove("wf-invalid");
    });
    var general = [];
    var badSteps = {};
    var all = {};
    Object.keys(errors).forEach(function (key) { all[key] = errors[key].map(sentence); });
    Object.keys(this.localProblems).forEach(function (key) {  // what was found here wins over the server's reading
      var parts = key.split(".");
      all["steps[" + parts[0] + "]." + parts.slice(1).join(".")] = [self.localProblems[key]];
    });
    var count = 0;
    Object.keys(all).forEach(function (key) {
      var match = STEP_KEY.exec(key);
      var messages = all[key];
      count += messages.length;
      if (!match) { general = general.concat(messages); return; }
      var card = self.list.children[Number(match[1])];
      badSteps[Number(match[1]) + 1] = true;
      if (!card) { general = general.concat(messages); return; }
      card.classList.add("wf-invalid");
      var field = match[2] ? card.querySelector(".wf-field[data-field='" + match[2].replace(/'/g, "") + "']") : null;
      var list = field ? field.querySelector(".wf-field-errors") : card.querySelector(".wf-card-errors");
      if (field) field.classList.add("wf-invalid");
      messages.forEach(function (message) {
        list.appendChild(el("li", {text: (field || !match[2] ? "" : match[2] + ": ") + message}));
      });
      list.hidden = false;
    });
    var steps = Object.keys(badSteps);
    if (!count) {
      this.setStatus("ok", this.steps.length === 1 ? "✓ The step is valid." : "✓ All " + this.steps.length + " steps are valid.");
    } else {
      var where = steps.length ? " in step" + (steps.length > 1 ? "s " : " ") + steps.join(", ") : "";
      this.setStatus("bad", count + (count === 1 ? " problem" : " problems") + where + (general.length ? ": " + general.join(" ") : "."));
    }
  };

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll(".wf-editor"), function (root) {
      root.editor = new Editor(root);
    });
  });
})();
