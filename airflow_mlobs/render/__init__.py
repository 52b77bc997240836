"""Rendering: how results read to people, apart from deciding what they mean.

One room for every text a result becomes: the findings table of the task log (:mod:`.text`), the
title and the key-numbers line of each check (:mod:`.headline`), what every message shows
(:mod:`.message`), Slack Block Kit (:mod:`.slack`) and email (:mod:`.email`). Pure: no Airflow, no
I/O; the notifiers deliver what these build. Adding a check is one headline function here.
"""
