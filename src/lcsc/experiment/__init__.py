"""What the experiments (:mod:`lcsc.demo`, :mod:`lcsc.distill`) share, a layer below both: ``DemoConfig`` (config),
the held-out scorer (scoring), the stages — training, EMA* grids, anchored LCSC searches, held-out rows — (stages),
the headline crossings and NFE matches (headlines), the stage clock (clock) and the measured unit costs of the time
estimates (unit_costs). Import the modules; this package imports nothing, so that a light one stays light."""
