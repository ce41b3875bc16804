"""The official code's CartPole, integrated by the official simulator (dflex from HaoxiangYou/D.VA).

Built with dflex's ModelBuilder exactly as `utils/load_utils.py:urdf_load` builds `envs/assets/cartpole.urdf`
for `envs/cartpole.py` (urchin, the URDF parser, is not needed: the URDF's two joints and two collision
boxes are added by hand with urdf_load's defaults). Usage: DVA_ROOT=<D.VA checkout> python official_cartpole.py
Q0 QD0 ACTIONS (JSON lists); prints the body masses/inertias and then q after every control step as JSON.
"""
import json
import math
import os
import sys
import types

import numpy as np
import torch

sys.modules['urchin'] = types.ModuleType('urchin')
ROOT = os.environ['DVA_ROOT']  # a checkout of HaoxiangYou/D.VA whose dflex compiles here
sys.path.insert(0, os.path.join(ROOT, 'dflex')); sys.path.insert(0, ROOT)
import dflex as df
df.config.no_grad = True
b = df.sim.ModelBuilder()
# urdf_load defaults used by envs/cartpole.py: damping 10, stiffness 100, armature 0, limit_ke 100, limit_kd 1 (passed), shape_kd 1e4
b.add_articulation()
root = b.add_link(-1, df.transform((0.0, 2.5, 0.0), df.quat_from_axis_angle((1.0, 0.0, 0.0), -math.pi*0.5)), (0,0,0), df.JOINT_FIXED)
cart = b.add_link(parent=root, X_pj=df.transform((0,0,0), df.quat_identity()), axis=(1.0,0.0,0.0), type=df.JOINT_PRISMATIC,
                  limit_lower=-4.0, limit_upper=4.0, limit_ke=100.0, limit_kd=1.0, armature=0.0, stiffness=100.0, damping=10.0)
b.add_shape_box(cart, (0,0,0), df.quat_identity(), 0.25, 0.25, 0.1, ke=1e4, kd=1e4, kf=1e2, mu=0.25)
pole = b.add_link(parent=cart, X_pj=df.transform((0,0,0), df.quat_identity()), axis=(0.0,1.0,0.0), type=df.JOINT_REVOLUTE,
                  limit_lower=-1000.0, limit_upper=1000.0, limit_ke=100.0, limit_kd=1.0, armature=0.0, stiffness=100.0, damping=10.0)
b.add_shape_box(pole, (0,0,0.5), df.quat_identity(), 0.025, 0.025, 0.5, ke=1e4, kd=1e4, kf=1e2, mu=0.25)
m = b.finalize('cpu'); m.ground = False
m.gravity = torch.tensor((0.0, -9.81, 0.0))
print("mass", b.body_mass, "inertia", [np.diag(np.array(I)).round(5).tolist() for I in b.body_inertia], "com", [list(c) for c in b.body_com])
integ = df.sim.SemiImplicitIntegrator()
s = m.state()
q0, qd0 = json.loads(sys.argv[1]), json.loads(sys.argv[2])
actions = json.loads(sys.argv[3])
out = []
with torch.no_grad():
    s.joint_q[:] = torch.tensor(q0); s.joint_qd[:] = torch.tensor(qd0)
    for a in actions:
        s.joint_act[0] = a * 1000.0
        s = integ.forward(m, s, 1/60, 4, 1)
        out.append(s.joint_q.numpy().tolist())
print(json.dumps(out))
