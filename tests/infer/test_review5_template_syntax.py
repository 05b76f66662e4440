"""Review 5: a chat template that does not compile is named as such, not as one that refuses the conversation.

Review 4 turned jinja2's TemplateError into "its chat template refuses this conversation: ...", which is
right for `raise_exception(...)` in a template (Gemma's "System role not supported") but TemplateSyntaxError is
one too: a broken template was reported as refusing the user's input, whatever the input.
"""

import shutil

from steel.cli import main as steel_main


def test_chat_template_syntax_error_is_not_blamed_on_the_conversation(tmp_path, tiny_llama_dir, capsys):
    d = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, d)
    assert (d / "chat_template.jinja").is_file()
    (d / "chat_template.jinja").write_text("{% for m in messages %}\n{{ m['content'] }{% endfor %}",
                                           encoding="utf-8")
    base = ["generate", "--model", str(d), "--device", "cpu", "--max-new-tokens", "2", "--chat", "--prompt", "hi"]
    assert steel_main(base) == 2
    err = capsys.readouterr().err
    assert "its chat template is not valid Jinja (line 2: unexpected '}')" in err, err
    assert "refuses this conversation" not in err
    assert "Traceback" not in err
