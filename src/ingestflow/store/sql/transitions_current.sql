SELECT from_stage, to_stage, actor FROM stage_transitions
