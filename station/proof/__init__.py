"""Plans as tests: prove that a plan passes a golden pack and catches every fault it declares.

``station test`` and the pytest plugin both run here: ``cases`` lists what to prove for a plan
(a golden run and one run per declared catch, per variant; with ``explore``, every catalogue
fault the plan does not declare), ``execute`` runs one case against the in-process simulator
on virtual time and judges it (verdict, step, the pack physically safe afterwards),
``parallel`` runs cases in worker processes, ``report`` prints the matrix and writes JUnit and
JSON.
"""
