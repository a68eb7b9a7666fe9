"""Quick start: train a small classifier on the built-in synthetic events, fit L-MAC, listen.

Run: .venv/bin/python examples/quickstart.py   (about 1-2 minutes on 2 CPU cores)
"""

import captum_lmac as cl

stft = cl.STFT(sample_rate=16000, n_fft=1024, hop_length=186, win_length=372, window="hamming")
train = cl.to_spectrograms(cl.SyntheticEvents(200, seed=0), stft)  # built-in data, known sources
test = cl.to_spectrograms(cl.SyntheticEvents(20, seed=2), stft)

model = cl.build_classifier(n_classes=10, stft=stft, n_mels=64)  # LogMel + compact CNN: X -> logits
cl.train_classifier(model, train.X, train.y, epochs=8)

lmac = cl.LMAC(model, layers=["net.block2", "net.block3", "net.block4"])
history = lmac.fit(train.X, epochs=3, val=test.X)
mask = lmac.attribute(test.X)  # (N, 1, F, T) in [0, 1]
audio = stft.listen(test.X, test.phase, mask, length=test.waveform.shape[-1])
cl.write_wav("explanation.wav", audio[0], stft.sample_rate)
cl.write_wav("input.wav", test.waveform[0], stft.sample_rate)
print(f"validation Fid-In {history['val_fid_in'][-1]:.2f}, mask mean {float(mask.mean()):.2f}")
print("wrote input.wav and explanation.wav: listen to what the classifier used")
