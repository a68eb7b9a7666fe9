"""Compare L-MAC with Captum baselines on a few synthetic clips: faithfulness and a figure.

Run: .venv/bin/python examples/compare_methods.py   (about 2 minutes on 2 CPU cores)
"""

import captum_lmac as cl
from captum_lmac.metrics import aggregate, faithfulness
from captum_lmac.viz import plot_explanation

stft = cl.STFT()
train = cl.to_spectrograms(cl.SyntheticEvents(200, seed=0), stft)
test = cl.to_spectrograms(cl.SyntheticEvents(30, seed=2), stft)
model = cl.build_classifier(n_classes=10, stft=stft, n_mels=64)
cl.train_classifier(model, train.X, train.y, epochs=8)

lmac = cl.LMAC(model, layers=["net.block2", "net.block3", "net.block4"])
lmac.fit(train.X, epochs=3)
methods = {"L-MAC": lmac}
for name in ("gradcam", "gradcam++", "ig"):
    methods[name] = cl.make_baseline(name, model)  # Captum method -> mask by one documented rule

masks = {}
for name, method in methods.items():
    masks[name] = method.attribute(test.X)
    per_clip = faithfulness(model, test.X, masks[name])
    print(name, {k: round(aggregate(per_clip[k])["mean"], 3) for k in ("AI", "AD", "AG", "FF", "FidIn", "MM")})
plot_explanation(test.X[0], [m[0] for m in masks.values()], "compare.png", titles=list(masks))
print("wrote compare.png")
