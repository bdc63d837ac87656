@echo off
rem 4.3) import DFL model: turn a DeepFaceLab SAEHD or Quick96 model (NAME_SAEHD_data.dat and
rem NAME_SAEHD_*.npy) or DFL's XSeg (XSeg_data.dat, XSeg_256.npy) in workspace/model, copied from DFL's
rem workspace/model, into this toolkit's model in the same folder; DFL's files are only read. Then train
rem (6, 5.XSeg) and merge (7) go on from DFL's iteration. AMP models cannot be imported yet.
rem Extra arguments go to main.py (--name NAME when the folder holds several DFL models, XSeg for XSeg);
rem set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" importdfl ^
    --input-dir "%WORKSPACE%\model" ^
    --model-dir "%WORKSPACE%\model" ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
