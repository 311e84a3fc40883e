"""Library modules log; the command shows their records on the console, warnings marked as such."""

from __future__ import annotations

import logging

from hiexp.progress import ConsoleLogHandler, show_logs


def test_show_logs_puts_hiexp_records_on_the_console_once(capsys):
    show_logs()
    show_logs()  # a second call adds no second handler
    logger = logging.getLogger("hiexp.experience.build")
    logger.info("embedding %d E1 titles", 3)
    logger.warning("a [bold]tag[/] stays text")
    logging.getLogger("other.library").warning("not ours")
    err = capsys.readouterr().err
    assert err.count("embedding 3 E1 titles") == 1
    assert "warning: a [bold]tag[/] stays text" in err  # rich markup in a message is escaped, not rendered
    assert "not ours" not in err
    assert sum(isinstance(h, ConsoleLogHandler) for h in logging.getLogger("hiexp").handlers) == 1
