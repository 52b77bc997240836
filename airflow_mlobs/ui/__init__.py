"""The dashboard inside the Airflow UI: an Airflow 3 plugin (:mod:`.plugin`) mounting a FastAPI app
(:mod:`.app`) under ``/mlobs`` in the api-server, behind Airflow's own authentication, whose pages
(:mod:`.pages`) read the results history (:mod:`airflow_mlobs.history`) and draw server-side SVG
(:mod:`airflow_mlobs.render.charts`). Nothing in the package imports this room.
"""
