@echo off
rem 4.3) import DFL model: turn a DeepFaceLab SAEHD model in workspace/model (NAME_SAEHD_data.dat
rem and NAME_SAEHD_*.npy, copied from DFL's workspace/model) into this toolkit's SAEHD model in the
rem same folder; DFL's files are only read. Then train (6) and merge (7) go on from DFL's iteration.
rem Extra arguments go to main.py (--name NAME when the folder holds several DFL models);
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
